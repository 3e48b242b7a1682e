/* gateway.c: the Jupyter Kernel Gateway REST surface over cellblock sessions. */
/*
 * What Notebook 6.4 and jupyter_server 1.x/2.x call with --gateway-url
 * (GATEWAY-NOTES.md): kernelspecs, kernels and their actions. A kernel is
 * a cellblock session, known by a kernel id that outlives hibernation,
 * resume and daemon restarts (gateway-kernel.c). Everything reaches the
 * session through the core's calls, the ones the control socket uses.
 */

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "server.h"
#include "http.h"

#define GATEWAY_API_VERSION	"2.5.0"
#define GATEWAY_START_POLL	10		/* ms between looks at a start */
#define GATEWAY_LAUNCH_DEFAULT	40		/* s: the clients' own timeout */
#define GATEWAY_LAUNCH_MAX	600
#define GATEWAY_BODY_MAX	(256 * 1024)	/* jupyter_server posts its env */
#define GATEWAY_USERNAME_MAX	256	/* KERNEL_USERNAME kept, bytes */

static http_fn gateway_api, gateway_specs, gateway_spec, gateway_resource,
    gateway_list, gateway_create, gateway_get, gateway_delete,
    gateway_interrupt, gateway_restart;

/*
 * Legend as in http.h: method, pattern, handler, who may call it, the
 * largest body. The channels route is in gateway-ws.c.
 */
static const struct http_route gateway_routes[] = {
	{ "GET", "/api", gateway_api, HTTP_OPEN, 0, NULL },
	{ "GET", "/api/kernelspecs", gateway_specs, HTTP_TOKEN, 0, NULL },
	{ "GET", "/api/kernelspecs/{name}", gateway_spec, HTTP_TOKEN, 0, NULL },
	{ "GET", "/kernelspecs/{name}/{*}", gateway_resource, HTTP_TOKEN, 0, NULL },
	{ "GET", "/api/kernels", gateway_list, HTTP_TOKEN, 0, NULL },
	{ "POST", "/api/kernels", gateway_create, HTTP_TOKEN,
	  GATEWAY_BODY_MAX, NULL },
	{ "GET", "/api/kernels/{id}", gateway_get, HTTP_TOKEN, 0, NULL },
	{ "DELETE", "/api/kernels/{id}", gateway_delete, HTTP_TOKEN, 0, NULL },
	{ "POST", "/api/kernels/{id}/interrupt", gateway_interrupt,
	  HTTP_TOKEN, GATEWAY_BODY_MAX, NULL },
	{ "POST", "/api/kernels/{id}/restart", gateway_restart, HTTP_TOKEN,
	  GATEWAY_BODY_MAX, NULL },
};

/* The names a client may ask for; both are the one cellblock kernel. */
static const char *gateway_spec_names[] = { CELLBLOCK_KERNEL_NAME, "python3" };

/* A request waiting for a kernel to start or restart. */
struct gateway_wait {
	struct http_req		*req;
	char			 name[SESSION_NAME_MAX + 1];
	unsigned		 incarnation;
	uint64_t		 deadline;
	int			 status;	/* 201 or 200 */
	struct loop_timer	*timer;
};
static u_int	gateway_starting;

/* Kernel models. */

/* From the real state: clients cull by it, so it must be true. */
const char *
gateway_state(struct session *s)
{
	switch (s->state) {
	case SESSION_CREATING:
		return ("starting");
	case SESSION_BUSY:
		return ("busy");
	case SESSION_DEAD:
		return ("dead");
	case SESSION_IDLE:
	case SESSION_CHECKPOINTING:
	case SESSION_HIBERNATED:
		break;
	}
	return (s->current != NULL || !TAILQ_EMPTY(&s->queue) ? "busy" :
	    "idle");
}

json_t *
gateway_model(struct session *s)
{
	char		 kid[37], when[40];
	struct tm	 tm;
	json_t		*m;

	gateway_kernel_id(s, kid);
	gmtime_r(&s->last_active, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
	m = json_pack("{s:s,s:s,s:s,s:s,s:i}", "id", kid, "name",
	    CELLBLOCK_KERNEL_NAME, "last_activity", when, "execution_state",
	    gateway_state(s), "connections", gateway_ws_connections(s));
	/* KERNEL_USERNAME as posted: shown, never used for ownership. */
	if (s->username != NULL)
		json_object_set_new(m, "username", json_string(s->username));
	if (s->state == SESSION_DEAD)
		json_object_set_new(m, "reason", json_string("the kernel's "
		    "interpreter died and could not be restarted"));
	json_object_set_new(m, "cellblock", json_pack("{s:s,s:s}", "session",
	    s->name, "state", session_state_name(s->state)));
	return (m);
}

/* The session a {id} route names, or a 404 already sent. */
static struct session *
gateway_kernel(struct http_req *req)
{
	struct session	*s;

	if ((s = gateway_find(http_param(req, 0), http_uid(req))) == NULL)
		http_error(req, 404, "Not Found", "no such kernel: %s",
		    http_param(req, 0));
	return (s);
}

/* Kernelspecs. */

static int
gateway_spec_known(const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(gateway_spec_names); i++) {
		if (strcmp(name, gateway_spec_names[i]) == 0)
			return (1);
	}
	return (0);
}

static json_t *
gateway_spec_json(const char *name)
{
	return (json_pack("{s:s,s:{s:[s,s,s,s],s:s,s:s,s:s,s:{},s:{s:b}},"
	    "s:{}}", "name", name, "spec", "argv", "cellblock", "attach",
	    "--connection-file", "{connection_file}", "display_name",
	    CELLBLOCK_DISPLAY_NAME, "language", "python", "interrupt_mode",
	    "message", "env", "metadata", "cellblock", 1, "resources"));
}

static void
gateway_api(struct http_req *req)
{
	http_reply_json(req, 200, json_pack("{s:s,s:s}", "version",
	    GATEWAY_API_VERSION, "cellblock", CELLBLOCK_VERSION));
}

static void
gateway_specs(struct http_req *req)
{
	json_t	*all = json_object();
	size_t	 i;

	for (i = 0; i < nitems(gateway_spec_names); i++)
		json_object_set_new(all, gateway_spec_names[i],
		    gateway_spec_json(gateway_spec_names[i]));
	http_reply_json(req, 200, json_pack("{s:s,s:o}", "default",
	    CELLBLOCK_KERNEL_NAME, "kernelspecs", all));
}

static void
gateway_spec(struct http_req *req)
{
	const char	*name = http_param(req, 0);

	if (!gateway_spec_known(name)) {
		http_error(req, 404, "Not Found", "no such kernel spec: %s",
		    name);
		return;
	}
	http_reply_json(req, 200, gateway_spec_json(name));
}

/* Resources: only kernel.json exists; no file is ever read from disk. */
static void
gateway_resource(struct http_req *req)
{
	json_t	*spec;
	char	*s;

	if (!gateway_spec_known(http_param(req, 0)) ||
	    strcmp(http_param(req, 1), "kernel.json") != 0) {
		http_error(req, 404, "Not Found", "no such kernel spec "
		    "resource");
		return;
	}
	spec = gateway_spec_json(http_param(req, 0));
	s = json_dumps(json_object_get(spec, "spec"), JSON_INDENT(1));
	http_reply(req, 200, "application/json", s, strlen(s));
	free(s);
	json_decref(spec);
}

/* Kernels. */

static void
gateway_list(struct http_req *req)
{
	struct session	*s;
	json_t		*a = json_array();

	for (s = session_first(); s != NULL; s = session_next()) {
		if (!s->ending && session_visible(s, http_uid(req)))
			json_array_append_new(a, gateway_model(s));
	}
	http_reply_json(req, 200, a);
}

static void
gateway_get(struct http_req *req)
{
	struct session	*s;

	if ((s = gateway_kernel(req)) != NULL)
		http_reply_json(req, 200, gateway_model(s));
}

static void
gateway_delete(struct http_req *req)
{
	struct session	*s;

	if ((s = gateway_kernel(req)) == NULL)
		return;
	log_info("%s deleted over HTTP by uid %u", s->name,
	    (u_int)http_uid(req));
	kernel_end(s, "deleted over HTTP");
	http_reply(req, 204, NULL, "", 0);
}

static void
gateway_interrupt(struct http_req *req)
{
	struct session	*s;

	if ((s = gateway_kernel(req)) == NULL)
		return;
	kernel_interrupt(s);
	http_reply(req, 204, NULL, "", 0);
}

/* Waiting for a start or a restart, within the launch timeout. */

static void
gateway_wait_done(struct gateway_wait *w)
{
	loop_timer_cancel(&w->timer);
	gateway_starting--;
	free(w);
}

static void
gateway_wait_poll(void *arg)
{
	struct gateway_wait	*w = arg;
	struct session		*s = session_find(w->name);

	w->timer = NULL;	/* one-shot: this is its callback */
	if (w->req == NULL) {
		/* The client gave up: no orphan kernel either. */
		if (w->status == 201 && s != NULL && !s->ending)
			kernel_end(s, "the client went away while it started");
		gateway_wait_done(w);
		return;
	}
	if (s == NULL || s->ending) {
		http_error(w->req, 500, "Internal Server Error", "the kernel "
		    "ended while starting");
		gateway_wait_done(w);
		return;
	}
	if (s->state == SESSION_DEAD) {
		http_error(w->req, 500, "Internal Server Error", "the kernel "
		    "died while starting");
		kernel_end(s, "failed to start");
		gateway_wait_done(w);
		return;
	}
	if (s->state != SESSION_CREATING && s->incarnation != w->incarnation) {
		http_reply_json(w->req, w->status, gateway_model(s));
		gateway_wait_done(w);
		return;
	}
	if (loop_now() > w->deadline) {
		/* No orphan: the client gives up now, so does the kernel. */
		http_error(w->req, 500, "Internal Server Error", "the kernel "
		    "did not start within its launch timeout");
		if (w->status == 201)
			kernel_end(s, "launch timeout");
		gateway_wait_done(w);
		return;
	}
	w->timer = loop_timer_add(GATEWAY_START_POLL, gateway_wait_poll, w);
}

static void
gateway_wait_gone(struct http_req *req, void *arg)
{
	struct gateway_wait	*w = arg;

	(void)req;
	w->req = NULL;
}

static void
gateway_wait(struct http_req *req, struct session *s, unsigned incarnation,
    size_t timeout, int status)
{
	struct gateway_wait	*w;

	w = xcalloc(1, sizeof *w);
	w->req = req;
	snprintf(w->name, sizeof w->name, "%s", s->name);
	w->incarnation = incarnation;
	w->deadline = loop_now() + timeout * 1000;
	w->status = status;
	gateway_starting++;
	http_suspend(req);
	http_on_close(req, gateway_wait_gone, w);
	w->timer = loop_timer_add(GATEWAY_START_POLL, gateway_wait_poll, w);
}

/* KERNEL_LAUNCH_TIMEOUT from the posted env, bounded; else the default. */
static size_t
gateway_launch_timeout(json_t *env)
{
	const char	*v;
	long		 t;

	v = json_string_value(json_object_get(env, "KERNEL_LAUNCH_TIMEOUT"));
	if (v == NULL)
		return (GATEWAY_LAUNCH_DEFAULT);
	t = strtol(v, NULL, 10);
	if (t <= 0)
		return (GATEWAY_LAUNCH_DEFAULT);
	return (t > GATEWAY_LAUNCH_MAX ? GATEWAY_LAUNCH_MAX : (size_t)t);
}

/* Is this posted variable one http-env-allow passes to the kernel? */
static int
gateway_env_allowed(const char *name)
{
	char	*list, *p, *pat;
	int	 found = 0;

	list = p = xstrdup(cfg.http_env_allow);
	while (!found && (pat = strsep(&p, ", \t")) != NULL) {
		if (*pat != '\0')
			found = factory_env_match(pat, name);
	}
	free(list);
	return (found);
}

/*
 * The posted env is the client's whole environment (jupyter_server 1.23
 * sends PATH, HOME, ...): only what http-env-allow names (KERNEL_* by
 * default, as Kernel Gateway's) reaches the kernel, and never a name the
 * sandbox reserves or that is not a valid name: dropped, not refused, as
 * the client posts its whole environment, not a choice. KERNEL_LAUNCH_TIMEOUT is honoured; KERNEL_USERNAME
 * is recorded as the session's, shown, never trusted: ownership comes
 * from the token alone. *envp: the kernel's (a new reference), or NULL.
 */
static int
gateway_check_create(struct http_req *req, json_t *body, json_t **posted,
    json_t **envp)
{
	const char	*name, *k;
	json_t		*v, *keep;
	char		*cause;

	*envp = NULL;
	v = json_object_get(body, "name");
	name = json_is_string(v) ? json_string_value(v) : NULL;
	if (v != NULL && !json_is_null(v) && name == NULL) {
		http_error(req, 400, "Bad Request", "name is not a string");
		return (-1);
	}
	if (name != NULL && *name != '\0' && !gateway_spec_known(name)) {
		http_error(req, 404, "Not Found", "no such kernel spec: %s",
		    name);
		return (-1);
	}
	*posted = json_object_get(body, "env");
	if (*posted != NULL && !json_is_object(*posted) &&
	    !json_is_null(*posted)) {
		http_error(req, 400, "Bad Request", "env is not an object");
		return (-1);
	}
	keep = json_object();
	json_object_foreach(*posted, k, v) {
		if (gateway_env_allowed(k) && factory_env_name_ok(k))
			json_object_set(keep, k, v);
	}
	if (json_object_size(keep) != 0 &&
	    (*envp = factory_env_check(keep, &cause)) == NULL) {
		http_error(req, 400, "Bad Request", "%s", cause);
		free(cause);
		json_decref(keep);
		return (-1);
	}
	json_decref(keep);
	return (0);
}

static void
gateway_create(struct http_req *req)
{
	char		 name[SESSION_NAME_MAX + 1], *cause;
	const char	*user;
	struct conninfo	 ci;
	struct session	*s;
	json_t		*body, *posted, *env = NULL;

	if ((body = http_body_json(req, &cause)) == NULL) {
		http_error(req, 400, "Bad Request", "%s", cause);
		free(cause);
		return;
	}
	if (gateway_check_create(req, body, &posted, &env) != 0)
		goto out;
	if (gateway_starting >= cfg.http_max_starts) {
		http_error(req, 403, "Resource Limit", "%u kernels are "
		    "starting already; try again shortly", gateway_starting);
		goto out;
	}
	session_random_name(name, sizeof name);
	endpoint_default_ci(&ci, name);
	if ((s = factory_new_session_with(name, http_uid(req), &ci, NULL,
	    NULL, env, &cause)) == NULL) {
		http_error(req, 403, "Resource Limit", "%s", cause);
		free(cause);
		goto out;
	}
	user = json_string_value(json_object_get(posted, "KERNEL_USERNAME"));
	if (user != NULL && *user != '\0' &&
	    strlen(user) <= GATEWAY_USERNAME_MAX) {
		s->username = xstrdup(user);
		record_save(s);
	}
	log_info("kernel %s for uid %u (KERNEL_USERNAME %.64s) from %s",
	    s->name, (u_int)http_uid(req), user ? user : "-",
	    http_peer(req));
	gateway_wait(req, s, (unsigned)-1, gateway_launch_timeout(posted), 201);
out:
	json_decref(env);
	json_decref(body);
}

static void
gateway_restart(struct http_req *req)
{
	struct session	*s;
	unsigned	 inc;

	if ((s = gateway_kernel(req)) == NULL)
		return;
	inc = s->incarnation;
	kernel_restart(s, "restarted over HTTP");
	gateway_wait(req, s, inc, GATEWAY_LAUNCH_DEFAULT, 200);
}

/* The daemon's side: start, stop, and the `make run` banner. */

/* The front's route tables: the fuzz harness registers them too. */
void
gateway_register(void)
{
	http_register("kernel gateway", gateway_routes,
	    nitems(gateway_routes));
	gateway_ws_register();
	http_metrics_register();
}

void
gateway_start(void)
{
	char	*cause;

	gateway_register();
	if (http_start(&cause) != 0) {
		/* The ZeroMQ side still works: say so, do not die. */
		log_warn("http: %s; the HTTP front is off", cause);
		free(cause);
	}
}

void
gateway_stop(void)
{
	gateway_ws_stop();
	ws_stop();
	http_stop();
}

/*
 * In the foreground (`make run`) a fresh token for the daemon's own uid,
 * replacing the one the last run made, and the line to paste.
 */
void
gateway_banner(FILE *f)
{
	json_t	*req, *r;

	if (http_url() == NULL)
		return;
	req = json_pack("{s:s,s:s}", "action", "revoke", "id", "make-run");
	json_decref(token_control(server_uid, req));
	json_decref(req);
	req = json_pack("{s:s,s:s}", "action", "new", "name", "make-run");
	r = token_control(server_uid, req);
	json_decref(req);
	if (json_is_true(json_object_get(r, "ok"))) {
		fprintf(f, "Kernel gateway at %s. Run a notebook through it:\n"
		    "  jupyter notebook --gateway-url=%s "
		    "--GatewayClient.auth_token=%s\n\n", http_url(),
		    http_url(), json_string_value(json_object_get(r,
		    "token")));
	}
	json_decref(r);
}
