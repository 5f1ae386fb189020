# bash completion for ferry-build and ferry-install.
# Verbs come from `PROG --help` (its "commands:" list) and each verb's flags
# from `PROG VERB --help`, so completion offers exactly what --help (and the
# man page, tests/e2e/help_manpages.sh) lists. Installed by `make install` as
# share/bash-completion/completions/ferry-build and .../ferry-install.

# _ferry_verbs PROG: the verbs PROG --help lists.
_ferry_verbs()
{
	"$1" --help 2>/dev/null | awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }'
}

# _ferry_flags PROG VERB: every --flag VERB --help mentions (--verify=X as --verify=).
_ferry_flags()
{
	"$1" "$2" --help 2>/dev/null | grep -o -e '--[a-z][a-z0-9-]*=\?' | sort -u
}

_ferry()
{
	local cur prev prog verb i
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	prog=${COMP_WORDS[0]}
	verb=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) verb=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [ -z "$verb" ]; then
		COMPREPLY=($(compgen -W "$(_ferry_verbs "$prog") --help --version" -- "$cur"))
		return 0
	fi
	# values of flags that take one of a few words, or a file
	case $prev in
	--mode) COMPREPLY=($(compgen -W "load mirror push" -- "$cur")); return 0 ;;
	--format) COMPREPLY=($(compgen -W "containerd registries.conf okd" -- "$cur")); return 0 ;;
	--target) COMPREPLY=($(compgen -W "kind kind: minikube minikube: okd containerd containerd: crio docker" -- "$cur")); return 0 ;;
	--runtime) COMPREPLY=($(compgen -W "containerd docker crio" -- "$cur")); return 0 ;;
	--node-runner) COMPREPLY=($(compgen -W "local docker minikube ssh" -- "$cur")); return 0 ;;
	--unpack) COMPREPLY=($(compgen -W "eager lazy" -- "$cur")); return 0 ;;
	--ingest) COMPREPLY=($(compgen -W "auto stream" -- "$cur")); return 0 ;;
	--cache | --tls-self-signed | --index-dir | --serve-dir | --hosts-dir | --registries-dir | --models-dir)
		COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
	-o | --key | --pubkey | --base | --base-pubkey | --with-installer | --ca | --tls-cert | --tls-key | \
		--ready-file | --access-log | --containerd-config | --archive-out | --kubeconfig | --bundle | --containerd)
		COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
	esac
	case $cur in
	--verify=*) COMPREPLY=($(compgen -W "--verify=full --verify=lazy" -- "$cur")); return 0 ;;
	-*)
		COMPREPLY=($(compgen -W "$(_ferry_flags "$prog" "$verb") --help" -- "$cur"))
		# a flag ending in '=' takes its value without a space
		[ "${#COMPREPLY[@]}" = 1 ] && [ "${COMPREPLY[0]%=}" != "${COMPREPLY[0]}" ] && compopt -o nospace 2>/dev/null
		return 0
		;;
	esac
	COMPREPLY=($(compgen -f -- "$cur"))
	return 0
}

complete -o filenames -F _ferry ferry-build ferry-install
