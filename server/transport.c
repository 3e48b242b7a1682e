/* transport.c: origins, the listener and iopub subscribers (transport.h). */

#include <stdlib.h>

#include "server.h"

/* One subscriber of one session's iopub; a list per session, a few long. */
struct transport_sub {
	struct transport_origin	*origin;
	struct transport_sub	*next;
};

static transport_listener *transport_core;

void
transport_listen(transport_listener *fn)
{
	transport_core = fn;
}

/* A transport hands over one decoded request; the core takes jm. */
void
transport_deliver(struct transport_origin *o, struct session *s,
    enum transport_channel ch, struct jmsg *jm)
{
	if (transport_core == NULL)
		fatalx("%s: no listener", __func__);
	transport_core(o, s, ch, jm);
}

struct transport_origin *
transport_origin_new(const struct transport_ops *ops, void *conn)
{
	struct transport_origin	*o;

	o = xcalloc(1, sizeof *o);
	o->ops = ops;
	o->conn = conn;
	o->refs = 1;
	return (o);
}

struct transport_origin *
transport_origin_ref(struct transport_origin *o)
{
	o->refs++;
	return (o);
}

void
transport_origin_unref(struct transport_origin **op)
{
	struct transport_origin	*o = *op;

	if (o == NULL)
		return;
	*op = NULL;
	if (--o->refs == 0)
		free(o);
}

/* The connection closed: nothing more is sent to it. */
void
transport_origin_gone(struct transport_origin **op)
{
	if (*op == NULL)
		return;
	(*op)->conn = NULL;
	transport_origin_unref(op);
}

int
transport_origin_alive(const struct transport_origin *o)
{
	return (o != NULL && o->conn != NULL);
}

void
transport_send(struct transport_origin *o, enum transport_channel ch,
    const struct jmsg_out *out)
{
	if (transport_origin_alive(o))
		o->ops->send(o->conn, ch, out);
}

int
transport_subscribed(struct session *s, struct transport_origin *o)
{
	struct transport_sub	*sub;

	for (sub = s->subs; sub != NULL; sub = sub->next) {
		if (sub->origin == o)
			return (1);
	}
	return (0);
}

void
transport_subscribe(struct session *s, struct transport_origin *o)
{
	struct transport_sub	*sub, **last;

	if (transport_subscribed(s, o))
		return;
	sub = xcalloc(1, sizeof *sub);
	sub->origin = transport_origin_ref(o);
	/* At the end: subscribers hear a message in the order they came. */
	for (last = &s->subs; *last != NULL; last = &(*last)->next)
		;
	*last = sub;
}

void
transport_unsubscribe(struct session *s, struct transport_origin *o)
{
	struct transport_sub	*sub, **pp;

	for (pp = &s->subs; (sub = *pp) != NULL; pp = &sub->next) {
		if (sub->origin == o) {
			*pp = sub->next;
			transport_origin_unref(&sub->origin);
			free(sub);
			return;
		}
	}
}

/* To every live subscriber; the gone ones are dropped on the way. */
void
transport_publish(struct session *s, const struct jmsg_out *out)
{
	struct transport_sub	*sub, **pp;

	pp = &s->subs;
	while ((sub = *pp) != NULL) {
		if (!transport_origin_alive(sub->origin)) {
			*pp = sub->next;
			transport_origin_unref(&sub->origin);
			free(sub);
			continue;
		}
		sub->origin->ops->publish(sub->origin->conn, s, out);
		pp = &sub->next;
	}
}

void
transport_subs_free(struct session *s)
{
	struct transport_sub	*sub;

	while ((sub = s->subs) != NULL) {
		s->subs = sub->next;
		transport_origin_unref(&sub->origin);
		free(sub);
	}
}
