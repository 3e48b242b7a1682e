/* token.c: HTTP tokens, each owned by a uid; only their hashes are kept. */
/*
 * `cellblock token new` asks over the control socket, so a token belongs
 * to the caller's uid as SO_PEERCRED says. The token is shown once; the
 * daemon keeps a BLAKE2b hash of it in STATE_DIR/tokens.json (0600). A
 * token is 32 random bytes, so a fast hash is enough: nobody can guess
 * one, and a stolen tokens.json gives no token back.
 *
 * A check hashes what it was given and compares it with every stored
 * hash in constant time, without stopping at a match: how long a check
 * takes says nothing about which token, if any, was close.
 */

#include <sys/stat.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"
#include "http.h"

#define TOKEN_PREFIX		"cb_"
#define TOKEN_MAX		1000		/* tokens in all */
#define TOKEN_NAME_MAX		64
#define TOKEN_BAD_LOGGED	3		/* lines per second, then a sum */

struct token {
	char		id[16];
	char		name[TOKEN_NAME_MAX + 1];
	uid_t		uid;
	time_t		created;
	u_char		hash[crypto_generichash_BYTES];
};

static struct token	*token_list;
static size_t		 token_n;
static char		*token_path;
static struct log_limit	 token_bad;

static void
token_hash(const char *tok, u_char out[crypto_generichash_BYTES])
{
	crypto_generichash(out, crypto_generichash_BYTES, (const u_char *)tok,
	    strlen(tok), (const u_char *)"cellblock-token", 15);
}

/* Many wrong tokens (a scan) make a few lines a second and a count. */
static void
token_log_bad(void)
{
	u_int	missed;
	int	log;

	log = log_limit(&token_bad, loop_now(), TOKEN_BAD_LOGGED, &missed);
	if (missed != 0)
		log_warn("http: %u more bad tokens", missed);
	if (log)
		log_warn("http: a request with a bad token");
}

int
token_check(const char *tok, uid_t *uid)
{
	u_char	h[crypto_generichash_BYTES];
	size_t	i;
	int	found = -1;

	token_hash(tok, h);
	for (i = 0; i < token_n; i++) {
		if (sodium_memcmp(h, token_list[i].hash, sizeof h) == 0)
			found = (int)i;
	}
	if (found == -1) {
		token_log_bad();
		return (-1);
	}
	*uid = token_list[found].uid;
	return (0);
}

/*
 * The token in a request: `Authorization: token T` or `Bearer T`, else
 * `?token=T`. A bare `Authorization: token` (what the gateway clients send
 * with no token set) counts as none.
 */
const char *
token_from_request(const char *auth, const char *query)
{
	const char	*p;

	if (auth != NULL) {
		if (strncasecmp(auth, "token ", 6) == 0)
			p = auth + 6;
		else if (strncasecmp(auth, "bearer ", 7) == 0)
			p = auth + 7;
		else
			p = NULL;
		while (p != NULL && *p == ' ')
			p++;
		if (p != NULL && *p != '\0')
			return (p);
	}
	if (query != NULL && *query != '\0')
		return (query);
	return (NULL);
}

/* The store. */

static int
token_save(char **cause)
{
	json_t	*a = json_array();
	char	*buf, *why, hex[2 * crypto_generichash_BYTES + 1];
	size_t	 i;
	int	 r;

	for (i = 0; i < token_n; i++) {
		sodium_bin2hex(hex, sizeof hex, token_list[i].hash,
		    sizeof token_list[i].hash);
		json_array_append_new(a, json_pack("{s:s,s:s,s:i,s:I,s:s}",
		    "id", token_list[i].id, "name", token_list[i].name, "uid",
		    (int)token_list[i].uid, "created",
		    (json_int_t)token_list[i].created, "blake2b", hex));
	}
	if ((buf = json_dumps(a, JSON_INDENT(1))) == NULL)
		fatalx("%s: out of memory", __func__);
	json_decref(a);
	r = file_write_atomic(token_path, buf, strlen(buf), 0600, (uid_t)-1,
	    &why);
	free(buf);
	if (r != 0) {
		xasprintf(cause, "cannot write %s", why);
		free(why);
	}
	return (r);
}

static int
token_load_one(json_t *e, struct token *t)
{
	const char	*id, *name, *hex;
	json_int_t	 uid;
	size_t		 len;

	if (json_unpack(e, "{s:s,s:s,s:I,s:I,s:s}", "id", &id, "name", &name,
	    "uid", &uid, "created", &t->created, "blake2b", &hex) != 0)
		return (-1);
	/* A uid past uid_t would wrap: 2^32 is root's token otherwise. */
	if (strlen(id) >= sizeof t->id || strlen(name) > TOKEN_NAME_MAX ||
	    uid < 0 || uid >= (uid_t)-1)
		return (-1);
	if (sodium_hex2bin(t->hash, sizeof t->hash, hex, strlen(hex), NULL,
	    &len, NULL) != 0 || len != sizeof t->hash)
		return (-1);
	snprintf(t->id, sizeof t->id, "%s", id);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->uid = (uid_t)uid;
	return (0);
}

int
token_load(char **cause)
{
	json_error_t	 jerr;
	json_t		*a, *e;
	size_t		 i;

	free(token_path);
	xasprintf(&token_path, "%s/tokens.json", server_state_dir);
	free(token_list);
	token_list = NULL;
	token_n = 0;
	if (access(token_path, F_OK) != 0)
		return (0);
	if ((a = json_load_file(token_path, 0, &jerr)) == NULL ||
	    !json_is_array(a) || json_array_size(a) > TOKEN_MAX) {
		xasprintf(cause, "%s: not a token list: %s", token_path,
		    a == NULL ? jerr.text : "not an array, or too long");
		json_decref(a);
		return (-1);
	}
	token_list = xcalloc(json_array_size(a) + 1, sizeof *token_list);
	json_array_foreach(a, i, e) {
		if (token_load_one(e, &token_list[token_n]) != 0) {
			log_warn("%s: entry %zu is not a token, skipped",
			    token_path, i);
			continue;
		}
		token_n++;
	}
	json_decref(a);
	log_info("http: %zu tokens", token_n);
	return (0);
}

/* Control commands: {"cmd":"token","action":"new"|"ls"|"revoke", ...}. */

static json_t *
token_error(int code, const char *msg)
{
	return (json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg, "code",
	    code));
}

static json_t *
token_new(uid_t uid, json_t *req)
{
	struct token	*t;
	const char	*name = json_string_value(json_object_get(req, "name"));
	u_char		 rnd[32], idr[4];
	char		 b64[64], tok[80], *cause;
	json_t		*r;

	if (name == NULL)
		name = "";
	if (strlen(name) > TOKEN_NAME_MAX || strpbrk(name, "\n\r\t") != NULL)
		return (token_error(EXIT_USAGE, "a token name is at most 64 "
		    "characters, on one line"));
	if (token_n >= TOKEN_MAX)
		return (token_error(EXIT_FAILED, "too many tokens"));
	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2base64(b64, sizeof b64, rnd, sizeof rnd,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(tok, sizeof tok, TOKEN_PREFIX "%s", b64);
	sodium_memzero(rnd, sizeof rnd);
	token_list = xrealloc(token_list, (token_n + 1) * sizeof *token_list);
	t = &token_list[token_n];
	memset(t, 0, sizeof *t);
	randombytes_buf(idr, sizeof idr);
	snprintf(t->id, sizeof t->id, "tk-%02x%02x%02x%02x", idr[0], idr[1],
	    idr[2], idr[3]);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->uid = uid;
	t->created = time(NULL);
	token_hash(tok, t->hash);
	token_n++;
	if (token_save(&cause) != 0) {
		token_n--;
		r = token_error(EXIT_FAILED, cause);
		free(cause);
		return (r);
	}
	log_info("http: token %s (%s) made for uid %u", t->id, t->name,
	    (u_int)uid);
	r = json_pack("{s:b,s:s,s:s,s:s,s:i}", "ok", 1, "token", tok, "id",
	    t->id, "name", t->name, "uid", (int)uid);
	sodium_memzero(tok, sizeof tok);
	return (r);
}

static json_t *
token_ls(uid_t uid)
{
	json_t	*a = json_array();
	size_t	 i;

	for (i = 0; i < token_n; i++) {
		if (uid != 0 && token_list[i].uid != uid)
			continue;
		json_array_append_new(a, json_pack("{s:s,s:s,s:i,s:I}", "id",
		    token_list[i].id, "name", token_list[i].name, "uid",
		    (int)token_list[i].uid, "created",
		    (json_int_t)token_list[i].created));
	}
	return (json_pack("{s:b,s:o}", "ok", 1, "tokens", a));
}

/* Revoke by id or name; a uid revokes only its own (root: any). */
static json_t *
token_revoke(uid_t uid, json_t *req)
{
	const char	*which = json_string_value(json_object_get(req, "id"));
	size_t		 i, kept = 0, gone = 0;
	char		*cause;
	json_t		*r;

	if (which == NULL || *which == '\0')
		return (token_error(EXIT_USAGE, "which token?"));
	for (i = 0; i < token_n; i++) {
		if ((uid == 0 || token_list[i].uid == uid) &&
		    (strcmp(token_list[i].id, which) == 0 ||
		    strcmp(token_list[i].name, which) == 0)) {
			log_info("http: token %s (%s) of uid %u revoked",
			    token_list[i].id, token_list[i].name,
			    (u_int)token_list[i].uid);
			gone++;
			continue;
		}
		token_list[kept++] = token_list[i];
	}
	token_n = kept;
	if (gone == 0)
		return (token_error(EXIT_FAILED, "no such token of yours"));
	if (token_save(&cause) != 0) {
		r = token_error(EXIT_FAILED, cause);
		free(cause);
		return (r);
	}
	return (json_pack("{s:b,s:I}", "ok", 1, "revoked", (json_int_t)gone));
}

json_t *
token_control(uid_t uid, json_t *req)
{
	const char	*action = json_string_value(json_object_get(req, "action"));

	if (token_path == NULL)
		return (token_error(EXIT_FAILED, "the HTTP front is off "
		    "(http-listen = off)"));
	if (action != NULL && strcmp(action, "new") == 0)
		return (token_new(uid, req));
	if (action != NULL && strcmp(action, "ls") == 0)
		return (token_ls(uid));
	if (action != NULL && strcmp(action, "revoke") == 0)
		return (token_revoke(uid, req));
	return (token_error(EXIT_USAGE, "token: action is new, ls or revoke"));
}
