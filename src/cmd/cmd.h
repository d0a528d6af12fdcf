/* The command table: every `kycd COMMAND` is one row {name, handler, usage,
 * signals, help}, looked up by name (src/main.c dispatches through it) and
 * printed, in table order, as the usage text; `kycd COMMAND --help` prints
 * the row's usage and help, and kycd(8)'s COMMANDS section is printed from
 * the same rows (`kycd help --reference man`, docs/reference.cmake). Adding
 * a command is adding a row here, with its usage and its help.
 *
 * Signals are main's (STYLE rule 10): a command that runs until stopped
 * (serve) is flagged `signals` and gets a cmd_ctl from main, through which it
 * waits for the stop signal and runs its drain under main's bound. Other
 * commands get ctl NULL and keep the default signal dispositions (SIGTERM
 * ends `kycd migrate` as it always did). */
#ifndef KYCD_CMD_CMD_H
#define KYCD_CMD_CMD_H

#include <stdint.h>
#include <stdio.h>

/* Exit codes shared by every command (README, "Commands"). */
enum {
    CMD_OK = 0,
    CMD_FAILED = 1,  /* a runtime failure: database, P100, spool, network */
    CMD_USAGE = 2,   /* bad usage or configuration: nothing was attempted */
    CMD_UNKNOWN = 3, /* `status` or `erase` of a user kycd does not know */
};

/* What a running command does while main waits for its stop signal, all
 * on main's thread. */
typedef struct cmd_hooks {
    void (*reload)(void *arg); /* each SIGHUP; NULL: SIGHUP is ignored */
    void (*tick)(void *arg);   /* every tick_ms (e.g. systemd's watchdog); NULL: none */
    int64_t tick_ms;
    void *arg;
} cmd_hooks;

typedef struct cmd_ctl cmd_ctl;
struct cmd_ctl {
    /* Blocks until the first SIGTERM or SIGINT; returns "TERM" or "INT".
     * Until then it runs the hooks (h may be NULL); a SIGHUP during
     * run_bounded is logged and ignored. */
    const char *(*wait_stop)(const cmd_ctl *ctl, const cmd_hooks *h);
    /* Runs stop(arg) on a thread of main's and returns once stop has
     * returned. If a second SIGTERM/SIGINT arrives first ("stop now"), or
     * limit_ms pass, it does not return: the process exits 1 at once, after
     * a log line saying which. */
    void (*run_bounded)(const cmd_ctl *ctl, void (*stop)(void *arg), void *arg, int64_t limit_ms);
    void *impl; /* main's */
};

/* argv holds the arguments after the command name. */
typedef int (*cmd_fn)(int argc, char **argv, const cmd_ctl *ctl);

typedef struct cmd_entry {
    const char *name;
    cmd_fn run;
    const char *usage; /* its lines of the usage text; NULL: an alias, not listed */
    int signals;       /* 1: main blocks SIGTERM/SIGINT first and passes a cmd_ctl */
    /* What the command does, for `kycd COMMAND --help` and kycd(8): plain
     * text, lines of at most 76 characters, paragraphs separated by an
     * empty line; no line starts with '.' or '\''. NULL only for an alias. */
    const char *help;
} cmd_entry;

/* The row named `name`, or NULL. */
const cmd_entry *cmd_find(const char *name);

/* The whole usage text: synopsis, every listed command, the config note. */
void cmd_print_usage(FILE *out);

/* The number of rows, and row i (aliases included), for the tests. */
size_t cmd_count(void);
const cmd_entry *cmd_at(size_t i);

/* 1 when argv (the arguments after the command name) asks for c's help
 * ("--help" or "-h" anywhere) and c is not `help` itself: main then prints
 * cmd_print_help instead of running c, with no configuration loaded. */
int cmd_help_requested(const cmd_entry *c, int argc, char **argv);

/* `kycd COMMAND --help`: the command's usage lines and its help. An alias
 * prints the help of the listed row with the same handler. */
void cmd_print_help(const cmd_entry *c, FILE *out);

/* kycd(8)'s COMMANDS section, in roff: one subsection per listed row, its
 * synopsis from the usage lines and its help as paragraphs. */
void cmd_print_man(FILE *out);

#endif
