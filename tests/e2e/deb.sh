# make deb (scripts/deb): the dynamic packages carry the Depends:
# dpkg-shlibdeps computes (libarchive, libcurl, libssl, libmicrohttpd, ...;
# an empty dpkg database refuses them for exactly that, and this host's apt
# resolves them), unpack and run; the portable package (when `make portable`
# ran) has no Depends, installs into a temporary root and admin dir, puts
# the installer where ferry-build looks for it, and runs.
. "$(dirname "$0")/lib.sh"
for c in dpkg-deb dpkg-shlibdeps apt-get; do command -v $c >/dev/null || skip "$c is not installed"; done
V=$(cat "$TOP/VERSION")
PORT=$TOP/build/portable/ferry-install
[ -x "$PORT" ] || PORT=""
FERRY_PORTABLE=$PORT "$TOP/scripts/deb" "$BUILD" "$T/deb"
A=$(dpkg --print-architecture)
for p in ferry-build ferry-install; do
	deb=$T/deb/${p}_${V}_$A.deb
	dep=$(dpkg-deb -f "$deb" Depends)
	echo "$p Depends: $dep"
	for lib in libc6 libarchive13 libcurl4 libssl3 libjansson4 libsqlite3-0 libyaml-0-2; do
		echo "$dep" | grep -q "$lib" || fail "$p does not depend on $lib"
	done
	dpkg-deb -x "$deb" "$T/x-$p"
	[ "$("$T/x-$p/usr/bin/$p" --version)" = "$p $V" ] || fail "$p --version"
	# its man pages (one per verb) and the bash completion
	for m in "$TOP/man/$p".1 "$TOP/man/$p"-*.1; do
		zcat "$T/x-$p/usr/share/man/man1/$(basename "$m").gz" | cmp -s - "$m" || fail "$p lacks $(basename "$m")"
	done
	[ -f "$T/x-$p/usr/share/bash-completion/completions/$p" ] || fail "$p lacks its completion"
	# this host has every dependency: apt would install it and nothing else
	out=$(apt-get -s install "$deb" 2>&1) || fail "apt-get -s install $p: $out"
	echo "$out" | grep -qE "^Inst $p " || fail "apt would not install $p: $out"
	echo "$out" | grep -E "^Inst " | grep -v "^Inst $p " && fail "apt wants more for $p"
	# an empty dpkg database: refused for the Depends
	mkdir -p "$T/root-$p" "$T/admin-$p/info" "$T/admin-$p/updates"
	touch "$T/admin-$p/status"
	expect_fail 1 "depends on libarchive13" dpkg --force-not-root --force-script-chrootless \
		--root="$T/root-$p" --admindir="$T/admin-$p" --log=/dev/null -i "$deb"
done
dpkg-deb -f "$T/deb/ferry-install_${V}_$A.deb" Depends | grep -q libmicrohttpd12 ||
	fail "ferry-install does not depend on libmicrohttpd12"
if [ -z "$PORT" ]; then
	[ ! -e "$T/deb/ferry-install-portable_${V}_$A.deb" ] || fail "a portable package without make portable"
	echo "no build/portable/ferry-install: the portable package is not built (make portable)"
	echo "ok: make deb (dynamic packages)"
	exit 0
fi
deb=$T/deb/ferry-install-portable_${V}_$A.deb
[ -z "$(dpkg-deb -f "$deb" Depends)" ] || fail "the portable package has Depends"
R=$T/root
mkdir -p "$R" "$T/admin/info" "$T/admin/updates"
touch "$T/admin/status"
dpkg --force-not-root --force-script-chrootless --root="$R" --admindir="$T/admin" --log=/dev/null -i "$deb"
dpkg --admindir="$T/admin" -s ferry-install-portable | grep -q "^Status: install ok installed" ||
	fail "not installed"
[ "$("$R/usr/bin/ferry-install" --version)" = "ferry-install $V" ] || fail "portable --version"
cmp -s "$R/usr/lib/ferry/ferry-install-linux-amd64" "$PORT" || fail "installed bytes differ"
# ferry-build from the ferry-build package, next to it, carries it by default
mkdir -p "$R/usr/bin"
cp "$T/x-ferry-build/usr/bin/ferry-build" "$R/usr/bin/ferry-build"
mkdir -p "$T/src"
echo hi >"$T/src/a.txt"
make_image "$T/src/l" x "$T/src/a.txt"
printf 'apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: d, version: "1"}\nimages:\n  - {ref: docker.io/library/x:1, from: "oci-layout:./l:x"}\n' >"$T/src/s.yaml"
ferry-build keygen -o "$T/k" >/dev/null
env -u FERRY_INSTALLER "$R/usr/bin/ferry-build" build "$T/src/s.yaml" -o "$T/b.tar" --key "$T/k.key" \
	--cache "$T/cache" 2>&1 | grep "installer tools/ferry-install-linux-amd64 <- $R/usr/bin/../lib/ferry" ||
	fail "ferry-build did not pick up the packaged installer"
tar -xOf "$T/b.tar" tools/ferry-install-linux-amd64 | cmp -s - "$PORT" || fail "carried bytes differ"
echo "ok: make deb (dynamic and portable packages)"
