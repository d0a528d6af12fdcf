/* The vocabulary, once: every enumeration P100 documents (the values of
 * verificationStatus, attemptStatus, the other webhooks' status, error
 * codes, the create request's fields) and every code of kycd's own that
 * crosses an edge (webhook kinds, sources, outcomes, reasons, check
 * results and purposes, P100 answer classes), each as one table value <->
 * name. Every layer converts at its edge only (SQL parameters, JSON, log
 * fields, metric labels), through these tables; no other C file spells a
 * P100 value. The P100 tables are compared with docs/p100-api.md and with
 * SQL's kyc.p100_values() by tests/e2e/test_vocabulary.sh, which reads
 * them from `kycd vocabulary`; the simulator and every generator of test
 * data take their values from the same source.
 *
 * Pure: no I/O. A table is indexed by the enum's value; a value without a
 * name (none, unknown) has a NULL entry. */
#ifndef KYCD_CORE_VOCAB_H
#define KYCD_CORE_VOCAB_H

#include <stddef.h>

typedef struct vocab {
    const char *field;        /* its name in docs/p100-api.md, or kycd's column/label */
    int p100;                 /* 1: P100 documents these values; 0: kycd's own codes */
    const char *const *names; /* names[value]; NULL: the value has no name */
    int size;                 /* entries in names */
} vocab;

/* The name of value, or NULL when it has none (out of range included). */
const char *vocab_name(const vocab *v, int value);
/* The same, or "unknown": the form the *_name functions of the enums'
 * modules return, for logs, metrics and SQL. */
const char *vocab_label(const vocab *v, int value);
/* The value named s, or -1 (NULL and "" included). */
int vocab_value(const vocab *v, const char *s);
/* Named values, in table order: the i-th name for i < vocab_count(v). */
int vocab_count(const vocab *v);
const char *vocab_nth(const vocab *v, int i);

/* P100's enumerations (docs/p100-api.md). */
extern const vocab VOCAB_VERIFICATION_STATUS; /* enum kyc_vstatus */
extern const vocab VOCAB_ATTEMPT_STATUS;      /* enum kyc_astatus */
extern const vocab VOCAB_POA_STATUS;          /* POA Verification Status `status` */
extern const vocab VOCAB_KYC_FILE_STATUS;     /* KYC File Added `status` */
extern const vocab VOCAB_USER_STATUS;         /* user status webhook `status` */
extern const vocab VOCAB_ERROR_CODE;          /* enum p100_code */
extern const vocab VOCAB_DOCUMENT_TYPE;       /* Create KYC Verification fields */
extern const vocab VOCAB_INCOME_SOURCE;
extern const vocab VOCAB_OPEN_ACCOUNT_REASON;
extern const vocab VOCAB_OCCUPATION;

/* kycd's own codes. */
extern const vocab VOCAB_KIND;         /* enum kyc_kind: kyc.webhook_events.kind */
extern const vocab VOCAB_SOURCE;       /* enum kyc_source */
extern const vocab VOCAB_OUTCOME;      /* enum kyc_outcome */
extern const vocab VOCAB_REASON;       /* enum kyc_reason */
extern const vocab VOCAB_CHECK_RESULT; /* enum kyc_check_result */
extern const vocab VOCAB_CHECK_WHY;    /* enum kyc_check_why */
extern const vocab VOCAB_P100_CLASS;   /* enum p100_class */
extern const vocab VOCAB_REFUSAL;      /* enum kyc_refusal */

/* Every table, P100's first, for `kycd vocabulary` and its tests. */
extern const vocab *const vocab_all[];
extern const size_t vocab_all_count;

#endif
