/* cellblock.c: the CLI: global options, then one command from the table. */

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Legend: every command the CLI knows; each lives in its own cmd-*.c. */
static const struct cmd_entry *cmd_table[] = {
	&cmd_new_entry,
	&cmd_ls_entry,
	&cmd_run_entry,
	&cmd_cp_entry,
	&cmd_interrupt_entry,
	&cmd_restart_entry,
	&cmd_kill_entry,
	&cmd_checkpoint_entry,
	&cmd_fork_entry,
	&cmd_attach_entry,
	&cmd_kernelspec_entry,
	&cmd_audit_entry,
	&cmd_stats_entry,
	&cmd_mcp_entry,
	&cmd_token_entry,
};

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	size_t	i;

	fprintf(stderr, "usage: cellblock [--state-dir DIR] command "
	    "[arguments]\ncommands:\n");
	for (i = 0; i < nitems(cmd_table); i++)
		fprintf(stderr, "  %s %s\n", cmd_table[i]->name,
		    cmd_table[i]->usage);
	exit(EXIT_USAGE);
}

void
cmd_usage(const struct cmd_entry *e)
{
	fprintf(stderr, "usage: cellblock %s %s\n", e->name, e->usage);
	exit(EXIT_USAGE);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	size_t	i;
	int	ch;

	log_open(LEVEL_WARN, stderr);
	/* czmq would otherwise swallow SIGINT and SIGTERM. */
	zsys_handler_set(NULL);
	/* Stop at the command: its options are its own. */
	while ((ch = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			client_set_state_dir(optarg);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	for (i = 0; i < nitems(cmd_table); i++) {
		if (strcmp(cmd_table[i]->name, argv[0]) == 0) {
			optind = 0;	/* reinitialise GNU getopt */
			return (cmd_table[i]->exec(argc, argv));
		}
	}
	fprintf(stderr, "cellblock: unknown command '%s'\n", argv[0]);
	usage();
}
