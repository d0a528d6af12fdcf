#!/usr/bin/env python3
"""Every relative link in the repository's documentation leads somewhere.

usage: doc_links_check.py ROOT

Checks, under ROOT (the files git tracks there, or every file when ROOT is
not a git work tree; build/ and node_modules/ are never read):
  - Markdown (*.md): every relative link [text](path), [text](path#anchor),
    [text](#anchor) and reference definition [x]: path: the path exists
    (relative to the file), and the anchor is a heading of the target (or an
    <a id/name> in it), slugged as GitHub does: lower case, spaces to '-',
    punctuation other than '-' and '_' dropped, a repeated heading gets -1,
    -2, ... Links inside code blocks and code spans are not links.
  - man page sources (docs/*.in, *.[1-8]): repository paths named in them
    (docs/..., deploy/..., tests/..., sql/..., src/...) exist, and every
    /usr/share/doc/kycd/NAME.gz names a page the build installs (a
    "doc/NAME:" entry in CMakeLists.txt whose source exists).
  - Prometheus rule files (deploy/prometheus/*.yml): every runbook_url that
    is a repository path with an anchor, and every "runbook: NAME" in a
    description, points at a heading that exists (NAME: a heading of
    docs/operations.md).
Prints one line per broken link (FILE:LINE: ...) and exits 1 if there is
one, 0 otherwise. Python 3 standard library only.
"""
import os
import re
import subprocess
import sys

SKIP_DIRS = {'.git', 'build', 'node_modules'}


def list_files(root):
    try:
        out = subprocess.run(['git', '-C', root, 'ls-files', '-z'], check=True,
                             capture_output=True).stdout.decode()
        if os.path.realpath(subprocess.run(
                ['git', '-C', root, 'rev-parse', '--show-toplevel'], check=True,
                capture_output=True).stdout.decode().strip()) == os.path.realpath(root):
            return sorted(f for f in out.split('\0') if f and os.path.exists(os.path.join(root, f)))
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS)
        for n in names:
            files.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(files)


FENCE = re.compile(r'^\s{0,3}(```+|~~~+)')
CODE_SPAN = re.compile(r'(`+)(.+?)\1')


def markdown_lines(text):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for i, line in enumerate(text.split('\n'), 1):
        m = FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark[0] * len(mark)
                continue
            if mark.startswith(fence):
                fence = None
                continue
        if fence is None:
            yield i, line


def slug(heading):
    """GitHub's anchor for a heading's text."""
    t = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # links: their text
    t = re.sub(r'<[^>]+>', '', t)                             # inline HTML
    t = t.replace('`', '')
    t = t.strip().lower()
    t = re.sub(r'[^\w\- ]', '', t)                            # \w: letters, digits, _
    return t.replace(' ', '-')


_anchor_cache = {}


def anchors(path):
    if path in _anchor_cache:
        return _anchor_cache[path]
    seen = {}
    result = set()
    with open(path, encoding='utf-8') as f:
        text = f.read()
    for _, line in markdown_lines(text):
        m = re.match(r'^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            result.add(s if n == 0 else '%s-%d' % (s, n))
        for m in re.finditer(r'<a\s+[^>]*(?:id|name)="([^"]+)"', line):
            result.add(m.group(1))
    _anchor_cache[path] = result
    return result


def check_target(root, src, target, problems, where):
    """A relative link from file src (relative to root)."""
    if re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', target) or target.startswith('//'):
        return  # a URL: not ours to check
    path, _, anchor = target.partition('#')
    if path:
        full = os.path.normpath(os.path.join(root, os.path.dirname(src), path))
        if not os.path.exists(full):
            problems.append('%s: broken link %s (no such file %s)' % (where, target, os.path.relpath(full, root)))
            return
    else:
        full = os.path.join(root, src)
    if anchor and full.endswith('.md') and os.path.isfile(full):
        if anchor not in anchors(full):
            problems.append('%s: broken link %s (no heading #%s in %s)' % (
                where, target, anchor, os.path.relpath(full, root)))


LINK = re.compile(r'\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
REFDEF = re.compile(r'^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s+"[^"]*")?\s*$')
HREF = re.compile(r'<a\s+[^>]*href="([^"]+)"')


def check_markdown(root, src, problems):
    with open(os.path.join(root, src), encoding='utf-8') as f:
        text = f.read()
    n = 0
    for i, line in markdown_lines(text):
        bare = CODE_SPAN.sub('', line)
        targets = [m.group(1) for m in LINK.finditer(bare)] + [m.group(1) for m in HREF.finditer(bare)]
        m = REFDEF.match(bare)
        if m:
            targets.append(m.group(1))
        for t in targets:
            n += 1
            check_target(root, src, t, problems, '%s:%d' % (src, i))
    return n


REPO_PATH = re.compile(r'(?<![\w/.-])((?:docs|deploy|tests|sql|src|certs)/[\w./-]*\w)')
DOC_GZ = re.compile(r'/usr/share/doc/kycd/([\w.-]+)\.gz')


def installed_docs(root):
    cm = os.path.join(root, 'CMakeLists.txt')
    if not os.path.isfile(cm):
        return {}
    with open(cm, encoding='utf-8') as f:
        text = f.read()
    out = {}
    for m in re.finditer(r'"doc/([\w.-]+):\$\{CMAKE_CURRENT_SOURCE_DIR\}/([^"]+)"', text):
        out[m.group(1)] = m.group(2)
    return out


def check_man(root, src, problems):
    docs = installed_docs(root)
    n = 0
    with open(os.path.join(root, src), encoding='utf-8') as f:
        for i, line in enumerate(f, 1):
            if line.startswith('.\\"'):
                continue
            plain = line.replace('\\-', '-').replace('\\&', '').replace('\\fB', '').replace(
                '\\fI', '').replace('\\fR', '').replace('\\fP', '')
            for m in REPO_PATH.finditer(plain):
                n += 1
                if not os.path.exists(os.path.join(root, m.group(1))):
                    problems.append('%s:%d: broken reference %s (no such file)' % (src, i, m.group(1)))
            for m in DOC_GZ.finditer(plain):
                n += 1
                name = m.group(1)
                if name not in docs:
                    problems.append('%s:%d: /usr/share/doc/kycd/%s.gz is not installed (no "doc/%s:" in CMakeLists.txt)'
                                    % (src, i, name, name))
                elif not os.path.exists(os.path.join(root, docs[name])):
                    problems.append('%s:%d: /usr/share/doc/kycd/%s.gz: its source %s does not exist'
                                    % (src, i, name, docs[name]))
    return n


RUNBOOK_URL = re.compile(r'^\s*runbook_url:\s*["\']?([^"\'\s]+)["\']?\s*$')
RUNBOOK_NAME = re.compile(r'\brunbook: (Kycd\w+)')
RUNBOOK_PAGE = 'docs/operations.md'


def check_rules(root, src, problems):
    n = 0
    page = os.path.join(root, RUNBOOK_PAGE)
    with open(os.path.join(root, src), encoding='utf-8') as f:
        for i, line in enumerate(f, 1):
            where = '%s:%d' % (src, i)
            m = RUNBOOK_URL.match(line)
            if m:
                n += 1
                url = m.group(1)
                if '#' not in url:
                    problems.append('%s: runbook_url %s names no section' % (where, url))
                else:
                    check_target(root, '.', url, problems, where)
            for m in RUNBOOK_NAME.finditer(line):
                n += 1
                if not os.path.isfile(page):
                    problems.append('%s: runbook %s: no %s' % (where, m.group(1), RUNBOOK_PAGE))
                elif m.group(1).lower() not in anchors(page):
                    problems.append('%s: runbook %s: no heading "%s" in %s' % (where, m.group(1), m.group(1), RUNBOOK_PAGE))
    return n


def main(argv):
    if len(argv) != 2:
        sys.stderr.write('usage: doc_links_check.py ROOT\n')
        return 2
    root = argv[1]
    problems = []
    counts = {'markdown': 0, 'man': 0, 'rules': 0}
    files = list_files(root)
    for src in files:
        if src.endswith('.md'):
            counts['markdown'] += check_markdown(root, src, problems)
        elif re.search(r'(^|/)docs/[^/]+\.in$', src) or re.search(r'\.[1-8]$', src):
            counts['man'] += check_man(root, src, problems)
        elif re.match(r'deploy/prometheus/[^/]+\.ya?ml$', src):
            counts['rules'] += check_rules(root, src, problems)
    for p in problems:
        print(p)
    print('checked %d Markdown links, %d man page references, %d runbook references in %d files: %d broken'
          % (counts['markdown'], counts['man'], counts['rules'], len(files), len(problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
