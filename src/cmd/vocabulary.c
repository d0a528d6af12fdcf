/* `kycd vocabulary` (see vocabulary.h). Must never read configuration or
 * touch the database: it only prints core's tables. */
#include "cmd/vocabulary.h"

#include <stdio.h>

#include "cmd/common.h"
#include "core/vocab.h"

int cmd_vocabulary(int argc, char **argv, const cmd_ctl *ctl)
{
    (void)ctl;
    cmd_flag f[] = {{"--p100", 0, NULL}};
    if (cmd_take_flags(&argc, argv, f, 1, NULL) != 0)
        return CMD_USAGE;
    if (argc > 0) {
        fprintf(stderr,
                "kycd vocabulary: unexpected argument '%s' (usage: kycd vocabulary "
                "[--p100])\n",
                argv[0]);
        return CMD_USAGE;
    }
    for (size_t t = 0; t < vocab_all_count; t++) {
        const vocab *v = vocab_all[t];
        if (f[0].value != NULL && !v->p100)
            continue;
        for (int i = 0; i < vocab_count(v); i++)
            printf("%s\t%s\t%s\n", v->field, v->p100 ? "p100" : "kycd", vocab_nth(v, i));
    }
    return fflush(stdout) == 0 ? CMD_OK : CMD_FAILED;
}
