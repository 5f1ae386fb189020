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

# --to is parsed by curl's URL parser: HOST[:PORT][/PREFIX], nothing else,
# and refused before anything is read (the bundle here holds no image, so
# the push step itself would never look at it)
mkdir -p "$T/m"
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab\n' >"$T/m/ns.yaml"
printf 'apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: a, version: "1"}\nmanifests:\n  - path: ./m\n' >"$T/spec.yaml"
ferry-build keygen -o "$T/k" >/dev/null
ferry-build build "$T/spec.yaml" -o "$T/b.tar" --key "$T/k.key" --cache "$T/cache" >/dev/null 2>&1 || fail build
for bad in 'user@reg:5000' 'reg:5000/a b' 'reg:5000?x=1' 'reg:5000#f' 'reg:5000/UPPER' ':5000' 'reg:99999' \
	'reg:5000/a//b' 'reg:5000/..'; do
	expect_fail 64 "--to: '" ferry-install install "$T/b.tar" --pubkey "$T/k.pub" --target kind:demo \
		--nodes n1 --mode push --to "$bad" --dry-run
done
ferry-install install "$T/b.tar" --pubkey "$T/k.pub" --target kind:demo --nodes n1 --mode push \
	--to 'http://127.0.0.1:5000/lab/mirror/' --dry-run >"$T/ok.out" 2>&1 || { cat "$T/ok.out"; fail "a good --to"; }
# --registry (the mirror address written into hosts.toml, registries.conf
# and the OKD objects) likewise: a quote or a newline could break out of them
for bad in 'reg:5000"evil' "$(printf 'reg:5000\nx')" 'user@reg:5000' 'reg:5000/a b'; do
	expect_fail 64 "--registry: '" ferry-install mirror-config "$T/b.tar" --pubkey "$T/k.pub" \
		--registry "$bad" --format containerd -o "$T/mc"
	expect_fail 64 "--registry: '" ferry-install install "$T/b.tar" --pubkey "$T/k.pub" \
		--target okd --mode mirror --registry "$bad" --dry-run
done
[ -e "$T/mc" ] && fail "mirror-config wrote files for a hostile --registry"
echo "ok: install arguments"
