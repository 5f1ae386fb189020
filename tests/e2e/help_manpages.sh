# --help, the man pages and the bash completion agree: for every verb of
# ferry-build and ferry-install there is a man page man/PROG-VERB.1; the set
# of --flags `PROG VERB --help` prints equals the set the man page's OPTIONS
# section names (both ways), and equals what completion/ferry.bash offers
# after `PROG VERB --`. The verbs `PROG --help` lists equal the man pages
# there are and the COMMANDS of man/PROG.1; every long option in the verb's
# option table (cmd_VERB.c) is in --help, and the parser accepts every flag
# --help names. The pages are valid roff
# (groff -ww, when groff is installed), and `make install-doc` places the
# pages and the completion under DESTDIR/PREFIX.
. "$(dirname "$0")/lib.sh"

MAN=${FERRY_MAN_DIR:-$TOP/man}
COMP=${FERRY_COMPLETION:-$TOP/completion/ferry.bash}
[ -f "$COMP" ] || fail "no $COMP"

flags() { grep -o -e '--[a-z][a-z0-9-]*' | sort -u; }
# the --flags in the OPTIONS section of a page (to the next .SH; .SS inside)
man_flags() {
	awk '/^\.SH / { on = ($2 == "OPTIONS") } on' "$1" | sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' | flags
}
# the verbs PROG --help lists
verbs() { "$1" --help | awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }'; }
# what the completion offers for: PROG WORD...  (the last word is completed)
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ferry; printf "%s\n" "${COMPREPLY[@]}"' \
		_ "$COMP" "$@"
}

# differ WHAT A B: fail naming the flags in one set only
differ() {
	if ! cmp -s "$2" "$3"; then
		comm -23 "$2" "$3" | sed "s|^|  only in $4: |" >&2
		comm -13 "$2" "$3" | sed "s|^|  only in $5: |" >&2
		fail "$1"
	fi
}

checked=0
for prog in ferry-build ferry-install; do
	verbs "$prog" >"$T/verbs"
	[ -s "$T/verbs" ] || fail "$prog --help lists no commands"
	# man pages there are for PROG's verbs
	(cd "$MAN" && ls "$prog"-*.1) | sed -e "s/^$prog-//" -e 's/\.1$//' | sort >"$T/pages"
	sort "$T/verbs" >"$T/verbs.s"
	differ "$prog: the verbs --help lists and the man pages differ" "$T/verbs.s" "$T/pages" "--help" "man/"
	# COMMANDS of the program's own page
	[ -f "$MAN/$prog.1" ] || fail "no $MAN/$prog.1"
	awk '/^\.SH / { on = ($2 == "COMMANDS") } on && tp && /^\.B [a-z]/ { print $2 } { tp = /^\.TP/ }' "$MAN/$prog.1" | sort >"$T/cmds"
	differ "$prog: --help and the COMMANDS of $prog.1 differ" "$T/verbs.s" "$T/cmds" "--help" "$prog.1"
	# the completion's verbs
	complete_words "$prog" "" | grep -v '^-' | sort >"$T/cverbs"
	differ "$prog: completion offers other verbs than --help" "$T/verbs.s" "$T/cverbs" "--help" "completion"
	while read -r verb; do
		page=$MAN/$prog-$verb.1
		"$prog" "$verb" --help >"$T/help" || fail "$prog $verb --help failed"
		flags <"$T/help" >"$T/hf"
		man_flags "$page" >"$T/mf"
		[ -s "$T/hf" ] || [ "$prog $verb" = "ferry-build keygen" ] || fail "$prog $verb --help names no flag"
		differ "$prog $verb: --help and $page OPTIONS differ" "$T/hf" "$T/mf" "--help" "man page"
		# the parser: every long option of the verb's getopt table (or, for
		# ferry-install, its cmd_opt table: cmd.h) is in --help, except --help itself and
		# --output (documented as -o); and every flag --help names is one the
		# parser accepts
		src=$TOP/$([ "$prog" = ferry-build ] && echo builder || echo installer)/cmd_$(echo "$verb" | tr - _).c
		[ -f "$src" ] || fail "no $src"
		{
			grep -oE '\{"[a-z][a-z0-9-]*", *(no|required|optional)_argument' "$src" || true
			grep -oE 'CMD_[A-Z]+\("[a-z][a-z0-9-]*"' "$src" || true
		} | sed -E 's/^[^"]*"([^"]*)".*/--\1/' | grep -vx -e --help -e --output | sort -u >"$T/pf"
		[ -s "$T/pf" ] || [ "$verb" = keygen ] || fail "no option table found in $src"
		differ "$prog $verb: the option table in $src and --help differ" "$T/pf" "$T/hf" "the parser" "--help"
		while read -r f; do
			out=$(timeout 20 "$prog" "$verb" "$f" --help </dev/null 2>&1 >/dev/null || true)
			echo "$out" | grep -qiE 'unrecognized option|unknown option' && fail "$prog $verb does not accept $f: $out"
		done <"$T/hf"
		# completion: the same flags, plus --help
		complete_words "$prog" "$verb" "--" | grep -vx -e '--help' | sed 's/=$//' | sort -u >"$T/cf"
		differ "$prog $verb: --help and the completion differ" "$T/hf" "$T/cf" "--help" "completion"
		checked=$((checked + 1))
		echo "  $prog $verb: $(wc -l <"$T/hf") flags agree (--help, man page, completion)"
	done <"$T/verbs"
done
[ "$checked" -ge 11 ] || fail "only $checked verbs checked"

# the pages are valid roff
if command -v groff >/dev/null; then
	for p in "$MAN"/*.1; do
		out=$(groff -man -ww -z "$p" 2>&1) || fail "groff failed on $p: $out"
		[ -z "$out" ] || fail "groff warns on $p: $out"
	done
fi

# value completion
complete_words ferry-install install B --mode "" | grep -qx mirror || fail "no completion of --mode values"

# make install-doc places the pages and the completion
make -s -C "$TOP" install-doc DESTDIR="$T/root" PREFIX=/usr >/dev/null
for p in "$MAN"/*.1; do
	[ -f "$T/root/usr/share/man/man1/$(basename "$p")" ] || fail "make install-doc did not place $(basename "$p")"
done
for prog in ferry-build ferry-install; do
	[ -f "$T/root/usr/share/bash-completion/completions/$prog" ] || fail "no completion installed for $prog"
done
echo "help_manpages: $checked verbs: --help, man pages and completion agree"
