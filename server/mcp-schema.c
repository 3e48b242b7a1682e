/* mcp-schema.c: check tool arguments against the JSON Schema subset the tools' inputSchemas use. */
/*
 * Keywords understood: type (a name or a list of names), properties,
 * required, additionalProperties (false), items, enum, minimum, maximum,
 * maxLength. The tables in mcp-tools.c use nothing else; a keyword this
 * does not know is ignored, as JSON Schema says.
 */

#include <stdlib.h>
#include <string.h>

#include "mcp.h"

static int	mcp_schema_value(json_t *, json_t *, const char *, char **);

static int
mcp_schema_is(json_t *v, const char *type)
{
	if (strcmp(type, "object") == 0)
		return (json_is_object(v));
	if (strcmp(type, "array") == 0)
		return (json_is_array(v));
	if (strcmp(type, "string") == 0)
		return (json_is_string(v));
	if (strcmp(type, "integer") == 0)
		return (json_is_integer(v));
	if (strcmp(type, "number") == 0)
		return (json_is_number(v));
	if (strcmp(type, "boolean") == 0)
		return (json_is_boolean(v));
	if (strcmp(type, "null") == 0)
		return (json_is_null(v));
	return (0);
}

static int
mcp_schema_type(json_t *schema, json_t *v, const char *at, char **cause)
{
	json_t	*type = json_object_get(schema, "type"), *t;
	size_t	 i;

	if (type == NULL)
		return (0);
	if (json_is_string(type) && mcp_schema_is(v, json_string_value(type)))
		return (0);
	json_array_foreach(type, i, t) {
		if (mcp_schema_is(v, json_string_value(t) ?: ""))
			return (0);
	}
	if (json_is_string(type))
		xasprintf(cause, "%s must be of type %s", at,
		    json_string_value(type));
	else
		xasprintf(cause, "%s has the wrong type", at);
	return (-1);
}

static int
mcp_schema_object(json_t *schema, json_t *v, const char *at, char **cause)
{
	json_t		*props = json_object_get(schema, "properties"), *p;
	json_t		*req = json_object_get(schema, "required");
	const char	*key;
	char		*sub;
	size_t		 i;
	int		 rc;

	json_array_foreach(req, i, p) {
		key = json_string_value(p);
		if (key != NULL && json_object_get(v, key) == NULL) {
			xasprintf(cause, "%s.%s is required", at, key);
			return (-1);
		}
	}
	json_object_foreach(v, key, p) {
		if (json_object_get(props, key) == NULL) {
			if (!json_is_false(json_object_get(schema,
			    "additionalProperties")))
				continue;
			xasprintf(cause, "%s: unknown property '%.64s'", at,
			    key);
			return (-1);
		}
		xasprintf(&sub, "%s.%.64s", at, key);
		rc = mcp_schema_value(json_object_get(props, key), p, sub,
		    cause);
		free(sub);
		if (rc != 0)
			return (-1);
	}
	return (0);
}

static int
mcp_schema_bounds(json_t *schema, json_t *v, const char *at, char **cause)
{
	json_t	*min = json_object_get(schema, "minimum");
	json_t	*max = json_object_get(schema, "maximum");
	json_t	*len = json_object_get(schema, "maxLength");

	if (json_is_number(v) && min != NULL &&
	    json_number_value(v) < json_number_value(min)) {
		xasprintf(cause, "%s must be at least %g", at,
		    json_number_value(min));
		return (-1);
	}
	if (json_is_number(v) && max != NULL &&
	    json_number_value(v) > json_number_value(max)) {
		xasprintf(cause, "%s must be at most %g", at,
		    json_number_value(max));
		return (-1);
	}
	if (json_is_string(v) && len != NULL &&
	    json_string_length(v) > (size_t)json_integer_value(len)) {
		xasprintf(cause, "%s is longer than %lld", at,
		    (long long)json_integer_value(len));
		return (-1);
	}
	return (0);
}

static int
mcp_schema_value(json_t *schema, json_t *v, const char *at, char **cause)
{
	json_t	*e, *items;
	char	*sub;
	size_t	 i;
	int	 rc;

	if (!json_is_object(schema))
		return (0);
	if (mcp_schema_type(schema, v, at, cause) != 0 ||
	    mcp_schema_bounds(schema, v, at, cause) != 0)
		return (-1);
	if ((e = json_object_get(schema, "enum")) != NULL) {
		json_array_foreach(e, i, items) {
			if (json_equal(items, v))
				break;
		}
		if (i == json_array_size(e)) {
			xasprintf(cause, "%s is not one of the allowed values",
			    at);
			return (-1);
		}
	}
	if (json_is_object(v))
		return (mcp_schema_object(schema, v, at, cause));
	items = json_object_get(schema, "items");
	if (!json_is_array(v) || items == NULL)
		return (0);
	json_array_foreach(v, i, e) {
		xasprintf(&sub, "%s[%zu]", at, i);
		rc = mcp_schema_value(items, e, sub, cause);
		free(sub);
		if (rc != 0)
			return (-1);
	}
	return (0);
}

/* 0 if v fits schema; else -1 and a cause naming the field (at: its name). */
int
mcp_schema_check(json_t *schema, json_t *v, const char *at, char **cause)
{
	return (mcp_schema_value(schema, v, at, cause));
}
