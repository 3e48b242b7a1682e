/* rest.h: the agent API's REST v1 on the HTTP front, file by file. */
#ifndef CELLBLOCK_REST_H
#define CELLBLOCK_REST_H

#include <sys/types.h>
#include <stdio.h>

#include <jansson.h>

struct http_req;
struct session;
struct contract_req;

/* server/rest.c: the route table, sessions and their operations. */
void		 rest_register(void);
void		 rest_banner(FILE *);
json_t		*rest_limits_request(json_t *, char **);

/* server/rest-req.c: errors, the session of a path, its REST shape. */
void		 rest_req_error(struct http_req *, u_int, const char *,
		     const char *, ...) __attribute__((format(printf, 4, 5)));
struct session	*rest_req_session(struct http_req *);
json_t		*rest_req_describe(struct session *);

/* server/rest-exec.c: execute (waiting or streamed) and executions. */
void		 rest_exec_run(struct http_req *);
void		 rest_exec_get(struct http_req *);
int		 rest_exec_parse(json_t *, struct contract_req *, char **);

/* server/rest-files.c: a session's working directory over HTTP. */
void		 rest_files_get(struct http_req *);
void		 rest_files_list(struct http_req *);
void		 rest_files_delete(struct http_req *);
void		 rest_files_put(struct http_req *);
int		 rest_files_sink(struct http_req *, const void *, size_t);

#endif
