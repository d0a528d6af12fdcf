"""The SQL statements of a C source file of kycd's, as its string literals
and the string macros they concatenate say (shared by pgbench_sql.py and
claim.sh's claim_sql.py), so that a benchmark runs exactly what kycd runs."""
import re


def c_strings(text):
    """name -> SQL for `#define NAME "..."...` and `static const char NAME[] = ...;`
    and `static const db_stmt NAME = {"name", "sql" ..., n}`."""
    text = text.replace("\\\n", " ")
    tok = re.compile(r'"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*)|(;|,|\}|\n)')
    out = {}

    def concat(body, stop):
        parts = []
        for m in tok.finditer(body):
            if m.group(1) is not None:
                parts.append(m.group(1).encode().decode("unicode_escape"))
            elif m.group(2) is not None:
                if m.group(2) in out:
                    parts.append(out[m.group(2)])
                elif parts:
                    break
            elif m.group(3) in stop and parts:
                break
        return "".join(parts)

    for m in re.finditer(r'^#define (SQL_[A-Z_]+)\s+(.*)$', text, re.M):
        out[m.group(1)] = concat(m.group(2), ("\n",))
    for m in re.finditer(r'static const char (SQL_[A-Z_]+)\[\] =(.*?);', text, re.S):
        out[m.group(1)] = concat(m.group(2), (";",))
    for m in re.finditer(r'static const db_stmt ([A-Z_]+) = \{\s*"[^"]*",(.*?)\};', text, re.S):
        out[m.group(1)] = concat(m.group(2), (",", "}"))
    return out
