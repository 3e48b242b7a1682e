/* test-redact.c: unit tests for the secret redaction rules (server/redact.c). */
/*
 * One case per built-in rule (the secret goes, the marker names the rule,
 * the text around it stays), near misses that must pass through untouched,
 * operator patterns, and bad operator patterns refused with a cause. Ends
 * with "N passed, N failed" like the other unit programs.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "check.h"

/*
 * Legend: the rule; a text carrying its secret; the secret itself (must be
 * gone); a piece of context that must survive.
 */
static const struct {
	const char	*rule;
	const char	*text;
	const char	*secret;
	const char	*keep;
} cases[] = {
	{ "private-key", "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQE"
	  "Aq7BFUpkGp3+\nabc/def==\n-----END RSA PRIVATE KEY-----\nafter",
	  "MIIEowIBAAKCAQE", "after" },
	{ "private-key", "{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIE"
	  "vQIBADANBgkqhkiG9w0\\n-----END PRIVATE KEY-----\\n\"}",
	  "MIIEvQIBADANBgkqhkiG9w0", "private_key" },
	{ "authorization", "GET / HTTP/1.1\r\nAuthorization: Bearer abc.def-123"
	  "\r\nHost: x", "abc.def-123", "Host: x" },
	{ "aws-access-key", "id AKIAIOSFODNN7EXAMPLE here",
	  "AKIAIOSFODNN7EXAMPLE", "here" },
	{ "aws-secret-key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPx"
	  "RfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	  "aws_secret_access_key" },
	{ "gcp-api-key", "key=AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW ok",
	  "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", "ok" },
	{ "gcp-oauth-token", "tok ya29.a0AfH6SMBx3kq9ZlT7PqR2 end",
	  "ya29.a0AfH6SMBx3kq9ZlT7PqR2", "end" },
	{ "azure-storage-key", "DefaultEndpointsProtocol=https;AccountName=x;"
	  "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4"
	  "I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core",
	  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4",
	  "EndpointSuffix=core" },
	{ "azure-sas", "https://a.blob.core.windows.net/c?sv=2020&sig=Zk9vYmFyYm"
	  "F6cXV4cXV1eHF1dXg%3D&se=1", "Zk9vYmFyYmF6cXV4cXV1eHF1dXg", "sv=2020" },
	{ "github-token", "ghp_1234567890abcdefghijABCDEFGHIJ123456 x",
	  "ghp_1234567890abcdefghijABCDEFGHIJ123456", " x" },
	{ "slack-token", "xoxb-1234567890-abcdefghij done", "xoxb-1234567890",
	  "done" },
	{ "api-key", "OPENAI_API_KEY is sk-proj-abcdefghijklmnopqrstuvwxyz0123",
	  "sk-proj-abcdefghijklmnopqrstuvwxyz0123", "OPENAI_API_KEY is" },
	{ "jwt", "t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3"
	  "jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U .", "dozjgNryP4J3jVmNHl0w5N", "t " },
	{ "password", "connect password=hunter2 now", "hunter2", "now" },
	{ "password", "TOKEN: \"s3cr3t value\"", "s3cr3t value", "TOKEN" },
	{ "password", "url?user=a&api_key=zzz111&x=1", "zzz111", "x=1" },
	{ "high-entropy", "blob Q2xvdWRTZWNyZXQ9N3hLcTJtUHZMOXJUd1pi4Y7 end",
	  "Q2xvdWRTZWNyZXQ9N3hLcTJtUHZMOXJUd1pi4Y7", "end" },
};

/* Text that looks a little like a secret and must pass untouched. */
static const char *clean[] = {
	"sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	"/usr/lib/python3/dist-packages/matplotlib/backends/backend_agg.py",
	"uuid 123e4567-e89b-12d3-a456-426614174000 and sk-short",
	"The password policy says nothing here.",
	"AKIA is a prefix; so is eyJ; BEGIN PUBLIC KEY is public",
	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
};

static char *
marker(const char *rule)
{
	return (xprintf("[REDACTED:%s]", rule));
}

static void
test_builtin(void)
{
	char	*out, *m;
	size_t	 i, hits;

	for (i = 0; i < nitems(cases); i++) {
		out = redact(cases[i].text, &hits);
		m = marker(cases[i].rule);
		if (strstr(out, m) == NULL || strstr(out, cases[i].secret) !=
		    NULL || strstr(out, cases[i].keep) == NULL || hits == 0)
			printf("case %zu (%s): '%s' -> '%s'\n", i,
			    cases[i].rule, cases[i].text, out);
		CHECK(strstr(out, m) != NULL);
		CHECK(strstr(out, cases[i].secret) == NULL);
		CHECK(strstr(out, cases[i].keep) != NULL);
		CHECK(hits > 0);
		free(m);
		free(out);
	}
}

/* Every rule in the table has at least one case above. */
static void
test_coverage(void)
{
	size_t	i, j;
	int	found;

	for (i = 0; i < redact_count(); i++) {
		found = 0;
		for (j = 0; j < nitems(cases); j++)
			found |= strcmp(cases[j].rule, redact_rule_name(i)) == 0;
		if (!found && strcmp(redact_rule_name(i), "employee-id") != 0)
			printf("rule %s has no case\n", redact_rule_name(i));
		CHECK(found || strcmp(redact_rule_name(i), "employee-id") == 0);
	}
}

static void
test_clean(void)
{
	char	*out;
	size_t	 i, hits;

	for (i = 0; i < nitems(clean); i++) {
		out = redact(clean[i], &hits);
		if (strcmp(out, clean[i]) != 0)
			printf("clean %zu changed: '%s'\n", i, out);
		CHECK(strcmp(out, clean[i]) == 0 && hits == 0);
		free(out);
	}
}

static void
test_operator(void)
{
	char	*cause = NULL, *out;
	size_t	 hits;

	out = redact("staff E-12345678 and E-1", &hits);
	CHECK(strcmp(out, "staff [REDACTED:employee-id] and E-1") == 0);
	CHECK(hits == 1);
	free(out);
	/* A marker already there is not redacted again by a later rule. */
	out = redact("token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijk",
	    NULL);
	CHECK(strcmp(out, "token=[REDACTED:jwt]") == 0);
	free(out);
	CHECK(redact_add("bad/name E-1", &cause) == -1 && cause != NULL);
	free(cause);
	cause = NULL;
	CHECK(redact_add("x (unclosed", &cause) == -1 && cause != NULL);
	free(cause);
	cause = NULL;
	CHECK(redact_add("onlyname", &cause) == -1 && cause != NULL);
	free(cause);
	cause = NULL;
	CHECK(redact_add("empty x*", &cause) == 0);
	out = redact("abc", NULL);	/* an empty match must not loop */
	CHECK(strcmp(out, "abc") == 0);
	free(out);
}

int
main(void)
{
	char	*pats[] = { "employee-id E-[0-9]{8}" }, *cause;

	if (redact_init(pats, nitems(pats), &cause) != 0) {
		printf("redact_init: %s\n0 passed, 1 failed\n", cause);
		return (1);
	}
	test_builtin();
	test_coverage();
	test_clean();
	test_operator();
	redact_free();
	return (check_report());
}
