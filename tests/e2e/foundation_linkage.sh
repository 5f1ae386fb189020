# The lab binary holds verify-only signing code; `make install` works;
# banned functions are absent (make lint's first half).
. "$(dirname "$0")/lib.sh"

# No bundle-signing code in ferry-install: neither our signing functions nor
# OpenSSL's signing entry points.
syms=$(nm "$BUILD/ferry-install"; nm -D "$BUILD/ferry-install")
for s in sig_sign sig_keygen sig_seckey_load sig_seckey_fingerprint EVP_DigestSign \
	EVP_DigestSignInit PEM_write_bio_PKCS8PrivateKey; do
	if echo "$syms" | grep -qw "$s"; then
		fail "ferry-install links $s"
	fi
done
# The only private-key code in the lab binary is the serve TLS key
# (registry/reg_tls.c: load --tls-key, or make a self-signed CA). Nothing
# else may touch private keys.
for o in "$BUILD"/installer/*.o "$BUILD"/registry/*.o "$BUILD"/common/*.o "$BUILD"/signing/sig_verify.o; do
	case $(basename "$o") in reg_tls.o) continue ;; esac
	if nm -u "$o" | grep -qwE 'PEM_read_bio_PrivateKey|EVP_PKEY_Q_keygen|EVP_PKEY_keygen|PEM_write_bio_PrivateKey'; then
		fail "$(basename "$o") handles private keys"
	fi
done
echo "$syms" | grep -qw sig_verify || fail "ferry-install lacks sig_verify"
# ferry-build has both halves
nm "$BUILD/ferry-build" | grep -qw sig_sign || fail "ferry-build lacks sig_sign"

# make install PREFIX=... puts both programs in PREFIX/bin
make -s -C "$TOP" BUILD="$BUILD" install PREFIX="$T/prefix" >/dev/null
"$T/prefix/bin/ferry-build" --version | grep -q '^ferry-build '
"$T/prefix/bin/ferry-install" --version | grep -q '^ferry-install '

# usage errors exit 64
expect_fail 64 'usage' ferry-install verify
expect_fail 64 'unknown command' ferry-build frobnicate

# banned functions (curl's list) appear nowhere in the sources
if grep -rnE '(^|[^_a-zA-Z0-9])(sprintf|strcpy|strcat|strtok|atoi|gets|system)[[:space:]]*\(' \
	"$TOP"/common "$TOP"/registry "$TOP"/signing "$TOP"/builder "$TOP"/installer \
	--include='*.c' --include='*.h'; then
	fail "banned function in sources"
fi
echo "linkage ok"
