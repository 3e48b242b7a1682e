/* http-metrics.c: GET /metrics on the HTTP front, Prometheus text (docs/OPERATIONS.md). */
/*
 * The same exposition `cellblock stats` prints, from metrics_render. A
 * token is needed unless metrics-public = yes; the sessions-by-owner
 * series go only to root's token and the daemon's own uid's, never to an
 * anonymous scraper, as on the control socket.
 */

#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "http.h"

#define HTTP_METRICS_TYPE	"text/plain; version=0.0.4; charset=utf-8"

static http_fn http_metrics;

/* Legend as in http.h; which table is registered follows metrics-public. */
static const struct http_route http_metrics_token[] = {
	{ "GET", "/metrics", http_metrics, HTTP_TOKEN, 0, NULL },
};
static const struct http_route http_metrics_open[] = {
	{ "GET", "/metrics", http_metrics, HTTP_OPEN, 0, NULL },
};

static void
http_metrics(struct http_req *req)
{
	uid_t	 uid = http_uid(req);
	char	*text;
	int	 owners;

	owners = uid != (uid_t)-1 && (uid == 0 || uid == server_uid);
	text = metrics_render(owners);
	http_reply(req, 200, HTTP_METRICS_TYPE, text, strlen(text));
	free(text);
}

void
http_metrics_register(void)
{
	if (cfg.metrics_public)
		http_register("metrics", http_metrics_open,
		    nitems(http_metrics_open));
	else
		http_register("metrics", http_metrics_token,
		    nitems(http_metrics_token));
}
