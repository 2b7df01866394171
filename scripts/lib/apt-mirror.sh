# apt_mirror: the Debian mirror apt already uses (deb822 .sources first, then legacy .list
# lines), for debootstrap; deb.debian.org when none is configured. Sourced by
# scripts/make-boot-image.sh and bench/make-images.sh.
apt_mirror() {
  local f u
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    u=$(sed -n 's/^URIs:[[:space:]]*//p' "$f" | tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -n1 || true)
    [ -n "$u" ] && { echo "$u"; return; }
  done
  u=$(grep -hE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) {print $i; exit}}' || true)
  echo "${u:-http://deb.debian.org/debian}"
}
