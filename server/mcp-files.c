/* mcp-files.c: the write_file, read_file and list_files tools over a session's files (files.h). */
/*
 * Paths are checked and resolved by server/files.c, beneath the session's
 * working directory, for a hibernated session too without resuming it;
 * here are only the MCP shapes: text or base64 in, text or base64 out
 * (and an image block for PNG and JPEG), each failure a typed isError.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "mcp.h"
#include "files.h"

/* files.c's kinds as the typed names every MCP tool error carries. */
static const char *mcp_files_errors[] = {
	[FILES_EOK] = "Failed",
	[FILES_ENOENT] = "NotFound",
	[FILES_EINVAL] = "BadPath",
	[FILES_EACCES] = "Forbidden",
	[FILES_ETOOBIG] = "TooLarge",
	[FILES_EQUOTA] = "QuotaExceeded",
	[FILES_EIO] = "IOError",
};

static json_t *
mcp_files_error(enum files_error e, char *cause)
{
	json_t	*r;

	if ((size_t)e >= nitems(mcp_files_errors))
		e = FILES_EIO;
	r = mcp_tool_error(mcp_files_errors[e], cause != NULL ? cause :
	    "failed");

	free(cause);
	return (r);
}

static u_char *
mcp_files_decode(const char *b64, size_t len, size_t *out)
{
	u_char	*bin = xmalloc(len / 4 * 3 + 3);

	if (sodium_base642bin(bin, len / 4 * 3 + 3, b64, len, " \r\n", out,
	    NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(bin);
		return (NULL);
	}
	return (bin);
}

json_t *
mcp_files_write(struct session *s, json_t *args)
{
	const char		*path = json_string_value(json_object_get(args,
				    "path"));
	json_t			*content = json_object_get(args, "content");
	const char		*enc = json_string_value(json_object_get(args,
				    "encoding"));
	const u_char		*data;
	u_char			*bin = NULL;
	size_t			 len;
	struct files_write	*w;
	enum files_error	 e;
	char			*cause = NULL;

	len = json_string_length(content);
	data = (const u_char *)json_string_value(content);
	if (enc != NULL && strcmp(enc, "base64") == 0) {
		if ((bin = mcp_files_decode((const char *)data, len, &len)) ==
		    NULL)
			return (mcp_tool_error("BadArguments", "content is not "
			    "valid base64"));
		data = bin;
	}
	if ((w = files_write_begin(s, path, len, &e, &cause)) == NULL) {
		free(bin);
		return (mcp_files_error(e, cause));
	}
	if (files_write_chunk(w, data, len, &e, &cause) != 0) {
		files_write_end(w, 0, NULL, NULL);
		free(bin);
		return (mcp_files_error(e, cause));
	}
	free(bin);
	if (files_write_end(w, 1, &e, &cause) != 0)
		return (mcp_files_error(e, cause));
	return (mcp_tool_result(json_pack("{s:s,s:I}", "path", path, "size",
	    (json_int_t)len), NULL));
}

/* Up to MCP_FILE_READ_MAX bytes of an open file; NULL on a read error. */
static char *
mcp_files_slurp(int fd, uint64_t size, char **cause)
{
	char	*buf = xmalloc(size + 1);
	size_t	 got = 0;
	ssize_t	 n;

	while (got < size) {
		n = read(fd, buf + got, size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == -1) {
				xasprintf(cause, "read: %s", strerror(errno));
				free(buf);
				return (NULL);
			}
			break;	/* shrank meanwhile */
		}
		got += n;
	}
	buf[got] = '\0';
	if (got < size)
		memset(buf + got, 0, size - got);
	return (buf);
}

static const char *
mcp_files_image(const u_char *p, size_t len)
{
	if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
		return ("image/png");
	if (len >= 3 && memcmp(p, "\xff\xd8\xff", 3) == 0)
		return ("image/jpeg");
	return (NULL);
}

/* The bytes as the read_file result: text, or base64 and maybe an image. */
static json_t *
mcp_files_answer(const char *path, const char *buf, size_t len,
    const char *enc)
{
	json_t		*text, *r;
	const char	*mime;
	char		*b64;
	size_t		 blen;

	text = (enc == NULL || strcmp(enc, "text") == 0) &&
	    memchr(buf, '\0', len) == NULL ? json_stringn(buf, len) : NULL;
	if (text == NULL && enc != NULL && strcmp(enc, "text") == 0)
		return (mcp_tool_error("NotText", "the file is not UTF-8 text; "
		    "read it with encoding base64"));
	if (text != NULL) {
		r = json_pack("{s:s,s:I,s:s,s:O}", "path", path, "size",
		    (json_int_t)len, "encoding", "text", "content", text);
		r = mcp_tool_result(r, json_string_value(text));
		json_decref(text);
		return (r);
	}
	blen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	b64 = xmalloc(blen);
	sodium_bin2base64(b64, blen, (const u_char *)buf, len,
	    sodium_base64_VARIANT_ORIGINAL);
	r = json_pack("{s:[{s:s,s:{s:s,s:s,s:s}}],s:{s:s,s:I,s:s,s:s}}",
	    "content", "type", "resource", "resource", "uri",
	    "cellblock://file", "mimeType", "application/octet-stream", "blob",
	    b64, "structuredContent", "path", path, "size", (json_int_t)len,
	    "encoding", "base64", "content", b64);
	if ((mime = mcp_files_image((const u_char *)buf, len)) != NULL)
		json_array_append_new(json_object_get(r, "content"),
		    json_pack("{s:s,s:s,s:s}", "type", "image", "data", b64,
		    "mimeType", mime));
	free(b64);
	return (r);
}

json_t *
mcp_files_read(struct session *s, json_t *args)
{
	const char		*path = json_string_value(json_object_get(args,
				    "path"));
	const char		*enc = json_string_value(json_object_get(args,
				    "encoding"));
	enum files_error	 e;
	uint64_t		 size;
	char			*cause = NULL, *buf;
	json_t			*r;
	int			 fd;

	if ((fd = files_open_beneath(s, path, &size, &e, &cause)) == -1)
		return (mcp_files_error(e, cause));
	if (size > MCP_FILE_READ_MAX) {
		close(fd);
		xasprintf(&cause, "%s is %llu bytes, over the %d a result may "
		    "carry; read a part of it with run_code", path,
		    (unsigned long long)size, MCP_FILE_READ_MAX);
		return (mcp_files_error(FILES_ETOOBIG, cause));
	}
	buf = mcp_files_slurp(fd, size, &cause);
	close(fd);
	if (buf == NULL)
		return (mcp_files_error(FILES_EIO, cause));
	r = mcp_files_answer(path, buf, size, enc);
	free(buf);
	return (r);
}

json_t *
mcp_files_list(struct session *s, json_t *args)
{
	const char		*dir = json_string_value(json_object_get(args,
				    "dir"));
	enum files_error	 e;
	char			*cause = NULL;
	json_t			*list;
	int			 truncated = 0;

	list = files_list(s, dir != NULL ? dir : "", &truncated, &e, &cause);
	if (list == NULL)
		return (mcp_files_error(e, cause));
	return (mcp_tool_result(json_pack("{s:o,s:b}", "entries", list,
	    "truncated", truncated), NULL));
}
