/* fuzz-rest.c: fuzz REST v1's request bodies through their parsers. */
/*
 * Input: the body of a POST /v1/sessions or POST .../execute, as the HTTP
 * front hands it over (json_loadb with duplicates refused, an object or
 * nothing, as http_body_json). Each body goes through both parsers:
 * rest_limits_request (then config_limits, as control_new does with it)
 * and rest_exec_parse.
 *
 * Oracles: a refusal has a cause; an accepted session body is a control
 * `new` whose keys are config.c's and whose name is valid; an accepted
 * execute body has code (a string without NUL), a timeout in range,
 * stdin an array of strings, store_history -1, 0 or 1, client "rest".
 */

#include <string.h>

#include "server.h"
#include "http.h"
#include "contract.h"
#include "rest.h"
#include "fuzz.h"

static const char *fuzz_keys[] = {
	"cmd", "name", "memory", "cpus", "pids", "tmp", "nofile", "fsize",
	"exec-timeout", "idle-timeout", "allow-net", "mounts", "env",
};

static void
fuzz_create(json_t *body)
{
	struct session_limits	 lim;
	const char		*k;
	json_t			*req, *v;
	char			*cause = NULL;
	size_t			 i;

	if ((req = rest_limits_request(body, &cause)) == NULL) {
		FUZZ_CHECK(cause != NULL);
		free(cause);
		return;
	}
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(req, "cmd")),
	    "new") == 0);
	json_object_foreach(req, k, v) {
		for (i = 0; i < nitems(fuzz_keys); i++) {
			if (strcmp(fuzz_keys[i], k) == 0)
				break;
		}
		FUZZ_CHECK(i < nitems(fuzz_keys));
		if (strcmp(k, "env") == 0)
			FUZZ_CHECK(json_is_object(v));	/* checked by new */
		else if (strcmp(k, "mounts") != 0)
			FUZZ_CHECK(json_is_string(v));
	}
	v = json_object_get(req, "name");
	if (v != NULL)
		FUZZ_CHECK(session_name_valid(json_string_value(v)));
	cause = NULL;
	if (config_limits(req, &lim, &cause) != 0)
		FUZZ_CHECK(cause != NULL);
	free(cause);
	json_decref(req);
}

static void
fuzz_execute(json_t *body)
{
	struct contract_req	 cr;
	json_t			*v;
	char			*cause = NULL;
	size_t			 i;

	if (rest_exec_parse(body, &cr, &cause) != 0) {
		FUZZ_CHECK(cause != NULL);
		free(cause);
		return;
	}
	FUZZ_CHECK(cr.code != NULL);
	FUZZ_CHECK(strlen(cr.code) == json_string_length(json_object_get(body,
	    "code")));
	FUZZ_CHECK(cr.timeout_ms >= 0 &&
	    cr.timeout_ms <= 7 * 24 * 3600 * 1000);
	FUZZ_CHECK(cr.store_history >= -1 && cr.store_history <= 1);
	FUZZ_CHECK(strcmp(cr.client, "rest") == 0);
	if (cr.stdin_lines != NULL) {
		FUZZ_CHECK(json_is_array(cr.stdin_lines));
		json_array_foreach(cr.stdin_lines, i, v)
			FUZZ_CHECK(json_is_string(v));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static int	 ready;
	json_error_t	 jerr;
	json_t		*body;

	if (!ready) {
		config_defaults();
		ready = 1;
	}
	body = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (body == NULL)
		return (0);
	if (json_is_object(body)) {
		fuzz_create(body);
		fuzz_execute(body);
	}
	json_decref(body);
	return (0);
}
