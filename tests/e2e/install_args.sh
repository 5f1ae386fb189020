# Hostile command-line values are usage errors (exit 64), named, before
# anything is read or touched: --listen must be ADDR:PORT (the mirror dry
# run once dereferenced the byte after a missing ':').
. "$(dirname "$0")/lib.sh"
: >"$T/none.tar"
for bad in nocolon 1.2.3.4: :99999 :-1 '[::1' 'host:5000x'; do
	expect_fail 64 "--listen wants ADDR:PORT" ferry-install install "$T/none.tar" --pubkey "$T/k.pub" \
		--target okd --mode mirror --listen "$bad" --dry-run
done
# a good one gets past the arguments (and fails later, on the missing key)
set +e
out=$(ferry-install install "$T/none.tar" --pubkey "$T/k.pub" --target okd --mode mirror \
	--listen '[::1]:5000' --dry-run 2>&1)
rc=$?
set -e
[ "$rc" != 64 ] || fail "a good --listen was refused: $out"
echo "ok: install arguments"
