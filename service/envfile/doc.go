// Package envfile is the one reader of KEY=VALUE environment files: the state
// files of service/persist and the os-release files service/proc reads from
// containers. It is a package of its own because neither of those may depend
// on the other, and the two file kinds share one grammar: systemd writes and
// reads both with the same env-file code.
//
// The grammar is systemd's, plus the C escapes of upstream 252's state files:
// blank lines and lines starting with '#' or ';' are skipped; a value may mix
// unquoted, '…' and "…" parts. Single quotes are literal. Inside double
// quotes a backslash escapes one of " \ ` $ and joins lines before a newline,
// and is kept before anything else (shell rules). Outside quotes a backslash
// takes the C escapes 252's cescape writes (\n, \t, \xHH, \NNN octal), joins
// lines before a newline and escapes any other byte. Unquoted trailing blanks
// are dropped.
//
// Parse refuses any malformed line: state files are ours or upstream's, and one
// that does not parse is damaged. ParseLenient reads files anyone may write
// (a container's os-release) as systemd does: it skips lines without '=',
// keys that are not [A-Za-z_][A-Za-z0-9_]*, values that are not UTF-8 and
// values an escape gave a NUL byte, and
// keeps systemd's reading of a bad escape or an unterminated quote.
//
// It must not import any other package of this project.
package envfile
