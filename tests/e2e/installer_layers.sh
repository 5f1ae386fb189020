# The installer's layers (docs/architecture.md, "The installer"): ins_install.c
# is the only orchestrator; no install step references a symbol defined in
# another step's object or in the orchestrator's. Shared leaves (ins_ctx,
# ins_kubectl, ins_nodes, ins_toml, ins_runner, ins_install_bundle, ins_place,
# ins_archive, ins_mirror, ...) may be used by any step. Checked with nm on
# the objects the build made; the checker is first shown to catch a
# violation in two objects made here for that purpose.
. "$(dirname "$0")/lib.sh"
command -v nm >/dev/null || skip "nm is not installed"

STEPS="ins_install_load ins_install_mirror ins_install_models ins_install_secrets ins_apply ins_push"
ORCH=ins_install

# violations DIR STEPS ORCH: print "STEP uses SYMBOL of OTHER" per offence
violations() {
	dir=$1 steps=$2 orch=$3
	for s in $steps; do
		[ -f "$dir/$s.o" ] || { echo "$s.o is missing"; continue; }
		undef=$(nm -u "$dir/$s.o" | awk '{print $NF}' | sort -u)
		for o in $steps $orch; do
			[ "$o" = "$s" ] && continue
			[ -f "$dir/$o.o" ] || { echo "$o.o is missing"; continue; }
			defs=$(nm --defined-only -g "$dir/$o.o" | awk '{print $NF}' | sort -u)
			comm -12 <(echo "$undef") <(echo "$defs") | sed "s/^/$s uses /; s/\$/ of $o/"
		done
	done
}

# the checker catches a step that calls back into the orchestrator
mkdir -p "$T/fake"
cat >"$T/fake/step_a.c" <<'C'
int orch_say(int);
int step_a(int x) { return orch_say(x); }
C
cat >"$T/fake/orch.c" <<'C'
int step_a(int);
int orch_say(int x) { return x; }
int orch_run(void) { return step_a(1); }
C
cat >"$T/fake/step_b.c" <<'C'
int leaf(int);
int step_b(int x) { return leaf(x); }
C
for f in step_a orch step_b; do cc -c -o "$T/fake/$f.o" "$T/fake/$f.c"; done
v=$(violations "$T/fake" "step_a step_b" orch)
[ "$v" = "step_a uses orch_say of orch" ] || fail "the checker missed a call back: '$v'"
v=$(violations "$T/fake" "step_b" orch)
[ -z "$v" ] || fail "the checker flagged a leaf call: '$v'"

v=$(violations "$BUILD/installer" "$STEPS" "$ORCH")
[ -z "$v" ] || fail "installer steps reach into each other or the orchestrator:
$v"
# and the orchestrator does call every step
u=$(nm -u "$BUILD/installer/$ORCH.o")
for sym in ins_install_load ins_install_mirror ins_install_mirror_config ins_install_models \
	ins_apply_manifests ins_push_bundle ins_okd_pull_secret ins_ns_pull_secret; do
	echo "$u" | grep -qw "$sym" || fail "$ORCH.o does not call $sym"
done
echo "ok: $(echo $STEPS | wc -w) steps, no step uses another's symbols"
