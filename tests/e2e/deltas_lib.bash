# The setup of the delta tests (not a test itself: tests/run runs *.sh).
# Source after lib.sh, install_lib.bash and pull_helpers.bash, inside the
# network namespace. deltas_setup: a docker-registry with app:1 and tool:1
# (sharing a base layer) and other:1; base.tar of app:1 and tool:1 and its
# receipt; upstream then gets app:2 (a changed layer) and extra:1 (a new tag
# on the base layer), and delta.tar of app:2, tool:1 and extra:1 is built
# against the receipt. Sets W, PUB, R (the receipt), V2 (the new spec),
# NEW_REFS (its images) and image_blobs().
# deltas_base: the registry with app:1, tool:1 and other:1, and base.tar
# of app:1 and tool:1 (W, PUB).
deltas_base() {
	W=$T/w
	mkdir -p "$W/files"
	ferry-build keygen -o "$W/k" >/dev/null
	PUB=$W/k.pub
	start_registry reg
	rand_file "$W/files/base.bin" 400000 21
	rand_file "$W/files/app1.bin" 300000 22
	rand_file "$W/files/tool.bin" 200000 23
	rand_file "$W/files/app2.bin" 300000 24
	rand_file "$W/files/extra.bin" 100000 25
	rand_file "$W/files/other.bin" 50000 26
	make_image "$W/L" app1 "$W/files/base.bin" "$W/files/app1.bin"
	make_image "$W/L" tool "$W/files/base.bin" "$W/files/tool.bin"
	make_image "$W/L" other "$W/files/other.bin"
	push "$W/L:app1" library/app:1
	push "$W/L:tool" library/tool:1
	push "$W/L:other" library/other:1
	spec_header "$W/v1.yaml"
	printf '  - docker.io/library/app:1\n  - docker.io/library/tool:1\n' >>"$W/v1.yaml"
	ferry-build build "$W/v1.yaml" -o "$W/base.tar" --key "$W/k.key" --cache "$W/c1" >/dev/null 2>"$W/err" ||
		fail "base build: $(cat "$W/err")"
}

deltas_setup() {
	deltas_base
	ferry-install receipt -o "$W/lab.receipt.json" --pubkey "$PUB" --bundle "$W/base.tar" >/dev/null ||
		fail "receipt"
	R=$W/lab.receipt.json
	make_image "$W/L" app2 "$W/files/base.bin" "$W/files/app2.bin"
	make_image "$W/L" extra "$W/files/base.bin" "$W/files/extra.bin"
	push "$W/L:app2" library/app:2
	push "$W/L:extra" library/extra:1
	V2=$W/v2.yaml
	spec_header "$V2"
	NEW_REFS="library/app:2 library/tool:1 library/extra:1"
	for r in $NEW_REFS; do printf '  - docker.io/%s\n' "$r" >>"$V2"; done
	ferry-build build "$V2" -o "$W/delta.tar" --key "$W/k.key" --cache "$W/c2" --base "$R" \
		>/dev/null 2>"$W/err" || fail "delta build: $(cat "$W/err")"
	[ "$(tar -xOf "$W/delta.tar" bundle.json | jq '.delta.omitted | length')" = 3 ] ||
		fail "the delta should leave out 3 blobs"
}

# blobs (configs and layers) of an image in the registry
image_blobs() {
	skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$REG_PORT/$1" |
		jq -r '.config.digest, .layers[].digest' | sed 's/^sha256://'
}
