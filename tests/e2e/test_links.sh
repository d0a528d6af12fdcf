#!/usr/bin/env bash
# kycd-test: once
# Every relative link of the documentation leads somewhere
# (tests/tools/doc_links_check.py): in every tracked Markdown file, each
# relative link's file exists and each #anchor is a heading of its target
# (GitHub's slugs); the man page sources name files that exist and docs the
# build installs; every alert's runbook_url and "runbook: NAME" is a section
# of docs/operations.md. First the checker is shown to fail on a made-up
# tree holding one broken link of each kind, and to pass on its fixed copy.
# Needs no database and no kycd.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOOL=$TEST_KYCD_SRC/tests/tools/doc_links_check.py
command -v python3 >/dev/null 2>&1 || e2e_abort "needs python3"

# check ROOT: the checker's output in $OUT, exit code in $RC.
check() { RC=0; OUT=$(timeout 60 python3 "$TOOL" "$1" 2>&1) || RC=$?; }

e2e_section "self-test: a made-up tree"
t=$E2E_TMP/tree
mkdir -p "$t/docs" "$t/deploy/prometheus"
cat >"$t/README.md" <<'MD'
# Demo

See [the guide](docs/guide.md#first-steps), [a missing page](docs/nope.md),
[a missing section](docs/guide.md#no-such-heading), [here](#demo) and
[nowhere here](#absent). Not links: `[x](docs/code-span.md)` and

```
[y](docs/fenced.md)
```
MD
cat >"$t/docs/guide.md" <<'MD'
# Guide

## First steps

## What's new: `kycd` 2.0, again!

Back to [the README](../README.md#demo) and [a section](#whats-new-kycd-20-again).

### KycdDown
MD
cat >"$t/docs/kycd.8.in" <<'MAN'
.TH KYCD 8
.SH FILES
.B /usr/share/doc/kycd/guide.md.gz
.br
.B /usr/share/doc/kycd/missing.md.gz
.br
See docs/guide.md and docs/gone.md.
MAN
cat >"$t/CMakeLists.txt" <<'CM'
foreach(pair "doc/guide.md:${CMAKE_CURRENT_SOURCE_DIR}/docs/guide.md")
endforeach()
CM
cat >"$t/deploy/prometheus/rules.yml" <<'YML'
groups:
  - name: demo
    rules:
      - alert: KycdDown
        annotations:
          description: "runbook: KycdDown in docs/operations.md."
          runbook_url: "docs/guide.md#kycddown"
      - alert: KycdGone
        annotations:
          description: "runbook: KycdGone in docs/operations.md."
          runbook_url: "docs/guide.md#kycdgone"
YML
cp "$t/docs/guide.md" "$t/docs/operations.md"
check "$t"
assert_eq 1 "$RC" "the checker fails on the made-up tree"
for want in "README.md:3: broken link docs/nope.md (no such file" \
            "README.md:4: broken link docs/guide.md#no-such-heading (no heading" \
            "README.md:5: broken link #absent (no heading" \
            "docs/kycd.8.in:5: /usr/share/doc/kycd/missing.md.gz is not installed" \
            "docs/kycd.8.in:7: broken reference docs/gone.md" \
            "rules.yml:10: runbook KycdGone: no heading" \
            "rules.yml:11: broken link docs/guide.md#kycdgone"; do
  assert_contains "$OUT" "$want" "it reports: $want"
done
assert_contains "$OUT" ": 7 broken" "and nothing else (7 broken)"
for good in "docs/guide.md#first-steps" "#demo" "../README.md#demo" "#whats-new-kycd-20-again" \
            "code-span" "fenced" "guide.md.gz" "docs/guide.md and" "KycdDown"; do
  assert_not_contains "$OUT" "$good" "a good link or code is not reported: $good"
done
# Fixed, the same tree passes.
sed -i 's#(docs/nope.md)#(docs/guide.md)#; s/#no-such-heading/#first-steps/; s/#absent/#demo/' "$t/README.md"
sed -i '/missing.md.gz/d; s# and docs/gone.md##' "$t/docs/kycd.8.in"
printf '\n### KycdGone\n' >>"$t/docs/guide.md"; cp "$t/docs/guide.md" "$t/docs/operations.md"
check "$t"
assert_eq 0 "$RC" "the fixed tree passes ($(e2e__clip "$OUT"))"

e2e_section "the repository"
check "$TEST_KYCD_SRC"
echo "$OUT"
assert_eq 0 "$RC" "every relative link, anchor, man page reference and runbook resolves"
assert_match "$OUT" "checked [1-9][0-9]* Markdown links, [1-9][0-9]* man page references, [1-9][0-9]* runbook references" \
  "it checked links of every kind"
