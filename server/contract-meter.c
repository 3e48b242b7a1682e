/* contract-meter.c: the metrics every execute_reply carries (metadata.cellblock). */
/*
 * One meter per execute request, kept in the core's request: when it was
 * queued and started, the session cgroup's CPU time at the start, the
 * stream bytes the cell wrote (before any cap), and the cgroup's memory
 * high-water mark, restarted at the start where the host can (cgroup v1;
 * on v2 memory.peak is the session's since its group was made). Measured
 * from the host side: a cell cannot forge them. docs/PROTOCOL.md.
 */

#include <string.h>

#include "server.h"
#include "cgroup.h"
#include "contract.h"

void
contract_meter_queued(struct contract_meter *m)
{
	memset(m, 0, sizeof *m);
	m->queued_at = loop_now();
	m->cpu_used_us = CGROUP_UNKNOWN;
}

void
contract_meter_start(struct session *s, struct contract_meter *m)
{
	uint64_t	cpu, peak;
	int		reset_ok;

	m->started_at = loop_now();
	contain_meter(s, 1, &cpu, &peak, &reset_ok);
	m->cpu_start_us = cpu;
	m->peak_reset = reset_ok;
}

/* A stream message of the request: its bytes, whatever is shown of it. */
void
contract_meter_stream(struct contract_meter *m, json_t *content)
{
	const char	*name = json_string_value(json_object_get(content, "name"));
	size_t		 len = json_string_length(json_object_get(content, "text"));

	if (name != NULL && strcmp(name, "stderr") == 0)
		m->stderr_bytes += len;
	else
		m->stdout_bytes += len;
}

static json_t *
contract_meter_u64(uint64_t v)
{
	return (v == CGROUP_UNKNOWN ? json_null() : json_integer((json_int_t)v));
}

/*
 * The metrics as a new object. A request that never ran (aborted, queue
 * full, the session ended first) has wall_ms and cpu_ms 0 and no peak.
 * The CPU used stays in m->cpu_used_us, in microseconds, for the audit
 * log's cpu_ms (struct hook_reply): one cgroup read for both.
 */
json_t *
contract_meter_metrics(struct session *s, struct contract_meter *m)
{
	uint64_t	now = loop_now(), cpu, peak = CGROUP_UNKNOWN;
	uint64_t	wall = 0, cpu_ms = 0, queued;
	int		reset_ok;

	queued = (m->started_at != 0 ? m->started_at : now) - m->queued_at;
	if (m->queued_at == 0)
		queued = 0;
	if (m->started_at != 0) {
		wall = now - m->started_at;
		contain_meter(s, 0, &cpu, &peak, &reset_ok);
		if (cpu == CGROUP_UNKNOWN || m->cpu_start_us == CGROUP_UNKNOWN)
			cpu_ms = CGROUP_UNKNOWN;
		else {
			m->cpu_used_us = cpu >= m->cpu_start_us ?
			    cpu - m->cpu_start_us : 0;
			cpu_ms = m->cpu_used_us / 1000;
		}
	}
	return (json_pack("{s:I,s:o,s:o,s:I,s:I,s:I}",
	    "wall_ms", (json_int_t)wall,
	    "cpu_ms", contract_meter_u64(cpu_ms),
	    "peak_memory_bytes", contract_meter_u64(peak),
	    "stdout_bytes", (json_int_t)m->stdout_bytes,
	    "stderr_bytes", (json_int_t)m->stderr_bytes,
	    "queued_ms", (json_int_t)queued));
}
