#!/usr/bin/env bash
# bench/make-images.sh - build berth's benchmark images as OCI image layouts.
#
#   $BENCH_DIR/images/busybox           1 layer : static busybox, applet symlinks, passwd/group
#   $BENCH_DIR/images/debian            3 layers: debootstrap --variant=minbase bookworm;
#                                                 special files (symlinks, hardlink, setuid,
#                                                 >100-char path, 4 MiB random); whiteouts
#                                                 (.wh.<name>) and an opaque dir (.wh..wh..opq)
#   $BENCH_DIR/images/many-small-files  2 layers: the busybox layer (same blob) + 20,000 files
#                                                 of 32-543 bytes under /data/dNNN/
# each tagged "latest". BENCH_DIR defaults to /var/tmp/berth-bench.
#
# Built images are kept (and reused) until the recipe below changes or --force is
# given; the debootstrap tree is cached in $BENCH_DIR/cache (--force-debootstrap
# to refetch). The only network use is debootstrap from the Debian mirror apt uses
# (MIRROR=url to override).
#
# The content matches the baseline images of the team's peer measurements
# (same files, layers and config), so numbers are comparable; digests differ
# (timestamps, random file).
#
# usage: bench/make-images.sh [--force] [--force-debootstrap] [IMAGE...]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
BENCH_TAG=make-images

# bump when the image content changes: cached images with another recipe are rebuilt
RECIPE=berth-bench-images-v1
SUITE=bookworm
SMALL_FILES=20000
FILES_PER_DIR=200

force=0 force_deb=0 want=()
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    --force-debootstrap) force=1 force_deb=1 ;;
    busybox|debian|many-small-files) want+=("$a") ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $a (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#want[@]} -gt 0 ] || want=("${BENCH_IMAGES[@]}")

bench_need_root
bench_ensure umoci:umoci jq:jq debootstrap:debootstrap tar:tar file:file
BUSYBOX=${BUSYBOX:-/bin/busybox}
static_busybox() { [ -x "$BUSYBOX" ] && file -L "$BUSYBOX" | grep -q 'statically linked'; }
if ! static_busybox; then
  bench_log "installing busybox-static"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static > /dev/null ||
    { apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static > /dev/null; }
  static_busybox || bench_die "$BUSYBOX is not a static busybox (apt-get install busybox-static)"
fi

IMAGES=$BENCH_DIR/images
CACHE=$BENCH_DIR/cache
STAGE=$BENCH_DIR/build
mkdir -p "$IMAGES" "$CACHE" "$STAGE"

# one builder at a time per BENCH_DIR
exec 9> "$BENCH_DIR/.make-images.lock"
flock -w 1800 9 || bench_die "another make-images.sh holds $BENCH_DIR/.make-images.lock"

# shellcheck source=scripts/lib/apt-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/apt-mirror.sh"
MIRROR=${MIRROR:-$(apt_mirror)}

# layer_tar DIR OUT - PAX tar of DIR's contents: sorted names without "./",
# numeric owners, no atime/ctime records
layer_tar() {
  local dir=$1 out=$2
  (cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort > "$out.names")
  tar -C "$dir" -cf "$out" --format=pax --numeric-owner --no-recursion \
    --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' -T "$out.names"
  rm -f "$out.names"
}

is_cached() { # NAME
  [ $force = 0 ] && [ -f "$IMAGES/$1/index.json" ] && [ "$(cat "$IMAGES/$1.recipe" 2>/dev/null)" = "$RECIPE" ]
}

# build_layout NAME CONFIG-ARGS... -- TAR:HISTORY...
#   creates $IMAGES/NAME (tag latest) from the given layer tars (gzip by umoci)
build_layout() {
  local name=$1; shift
  local cfg=() tmp=$IMAGES/.$name.new
  while [ $# -gt 0 ] && [ "$1" != -- ]; do cfg+=("$1"); shift; done
  shift
  rm -rf "$tmp"
  umoci init --layout "$tmp"
  umoci new --image "$tmp:latest"
  local spec
  for spec in "$@"; do
    umoci raw add-layer --image "$tmp:latest" --history.author berth-bench \
      --history.created_by "${spec#*:}" "${spec%%:*}"
  done
  umoci config --image "$tmp:latest" --no-history --author bench --os linux --architecture amd64 "${cfg[@]}"
  umoci gc --layout "$tmp"
  rm -rf "$IMAGES/$name" && mv "$tmp" "$IMAGES/$name"
  echo "$RECIPE" > "$IMAGES/$name.recipe"
  local sizes
  sizes=$(bench_layer_paths "$IMAGES/$name" | xargs stat -c %s | paste -sd+)
  bench_log "$name: sha256:$(bench_manifest_hex "$IMAGES/$name") layers: $sizes bytes"
}

# ---------------------------------------------------------------- busybox layer
# The same tar (so the same blob) goes into busybox and many-small-files; it is
# kept in $STAGE between runs and rebuilt once per run with --force.
BUSYBOX_TAR=""
busybox_layer_tar() { # sets BUSYBOX_TAR
  local root=$STAGE/busybox/root out=$STAGE/busybox/layer.tar
  if [ -z "$BUSYBOX_TAR" ] && { [ $force = 1 ] || [ ! -f "$out" ] || [ "$(cat "$out.recipe" 2>/dev/null)" != "$RECIPE" ]; }; then
    rm -rf "$STAGE/busybox"; mkdir -p "$root"
    (
      cd "$root"
      mkdir -p bin sbin usr/bin usr/sbin etc tmp root proc sys dev var/tmp
      chmod 1777 tmp var/tmp; chmod 0700 root
      install -m 0755 "$BUSYBOX" bin/busybox
      local applet target
      while read -r applet; do
        case $applet in
          bin/busybox) continue ;;
          bin/*) target=busybox ;;
          sbin/*) target=../bin/busybox ;;
          usr/bin/*|usr/sbin/*) target=../../bin/busybox ;;
          *) continue ;;
        esac
        ln -sfn "$target" "$applet"
      done < <("$BUSYBOX" --list-full)
      [ -e bin/sh ] || ln -s busybox bin/sh
      [ -e bin/true ] || ln -s busybox bin/true
      printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > etc/passwd
      printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > etc/group
      echo bench-busybox > etc/hostname
    )
    layer_tar "$root" "$out"
    echo "$RECIPE" > "$out.recipe"
  fi
  BUSYBOX_TAR=$out
}
BUSYBOX_CFG=(--config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin --config.workingdir /)

make_busybox() {
  busybox_layer_tar; local tar=$BUSYBOX_TAR
  build_layout busybox "${BUSYBOX_CFG[@]}" --config.env BENCH_IMAGE=busybox --config.cmd /bin/sh \
    --config.label org.opencontainers.image.title=bench-busybox \
    -- "$tar:COPY busybox-static + applet symlinks /"
}

# ---------------------------------------------------------------- many-small-files
make_many_small_files() {
  busybox_layer_tar; local tar=$BUSYBOX_TAR
  local d=$STAGE/many-small-files
  rm -rf "$d"; mkdir -p "$d/root/data"
  # file i: /data/d<i/200>/f<i>, "file <i> " + right-aligned x in 32+(i*37)%512 columns
  awk -v n=$SMALL_FILES -v per=$FILES_PER_DIR -v top="$d/root/data" 'BEGIN {
    for (i = 0; i < n; i++) {
      dir = sprintf("%s/d%03d", top, int(i / per))
      if (i % per == 0) system("mkdir -p " dir)
      f = sprintf("%s/f%05d", dir, i)
      printf("file %06d %" (32 + (i * 37) % 512) "s\n", i, "x") > f
      close(f)
    }
  }'
  [ "$(find "$d/root/data" -type f | wc -l)" = $SMALL_FILES ] || bench_die "many-small-files: wrong file count"
  layer_tar "$d/root" "$d/layer.tar"
  build_layout many-small-files "${BUSYBOX_CFG[@]}" --config.env BENCH_IMAGE=many-small-files \
    --config.env BENCH_FILES=$SMALL_FILES \
    --config.entrypoint /bin/sh --config.entrypoint -c --config.cmd 'find /data -type f | wc -l' \
    --config.workingdir /data --config.label org.opencontainers.image.title=bench-many-small-files \
    -- "$tar:COPY busybox-static + applet symlinks /" "$d/layer.tar:ADD $SMALL_FILES small files under /data"
}

# ---------------------------------------------------------------- debian
debootstrap_tree() { # prints the cached minbase tree
  local tree=$CACHE/debootstrap-$SUITE-minbase
  [ $force_deb = 1 ] && rm -rf "$tree" "$tree.ok"
  if [ ! -f "$tree.ok" ]; then
    bench_log "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
    rm -rf "$tree"
    if ! debootstrap --variant=minbase "$SUITE" "$tree" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1; then
      tail -n 20 "$CACHE/debootstrap.log" >&2; bench_die "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    echo "$SUITE minbase $MIRROR $(date -u +%FT%TZ)" > "$tree.ok"
  else
    bench_log "debian: using cached debootstrap tree $tree"
  fi
  echo "$tree"
}

make_debian() {
  local src d=$STAGE/debian
  src=$(debootstrap_tree)
  rm -rf "$d"; mkdir -p "$d"

  # layer 1: the minbase tree without device nodes, caches and host-specific files
  local l1=$d/l1
  cp -a "$src" "$l1"
  (
    cd "$l1"
    rm -rf dev/* proc/* sys/* run/* tmp/* var/tmp/*
    rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/*
    rm -f var/log/bootstrap.log var/cache/ldconfig/aux-cache etc/resolv.conf
    : > etc/machine-id
    echo bench-debian > etc/hostname
    echo 'Welcome to the bench debian image' > etc/motd
  )
  layer_tar "$l1" "$d/l1.tar"

  # layer 2: special files
  local l2=$d/l2 ob
  ob=$l2/opt/bench
  mkdir -p "$ob/dir-to-replace" "$l2/usr/local/bin" "$l2/etc/bench"
  printf 'image=debian\nsuite=%s\nmirror=%s\n' "$SUITE" "$MIRROR" > "$l2/etc/bench/image-info"
  cat > "$l2/usr/local/bin/bench-hello" <<'EOF'
#!/bin/sh
echo "hello from bench debian ($(cat /etc/debian_version))"
EOF
  chmod 0755 "$l2/usr/local/bin/bench-hello"
  echo keep > "$ob/keep.txt"
  echo 'removed by layer 3' > "$ob/remove-me.txt"
  local x
  for x in a b c; do echo "$x (hidden by opaque whiteout in layer 3)" > "$ob/dir-to-replace/$x.txt"; done
  echo hardlinked > "$ob/hardlink-target"
  ln "$ob/hardlink-target" "$ob/hardlink"
  ln -s keep.txt "$ob/symlink-to-keep"
  ln -s /etc/bench/image-info "$ob/abs-symlink"
  install -m 4755 "$src/usr/bin/true" "$ob/setuid-true"
  local long
  long=$ob/long/$(printf '%060d' 0 | tr 0 d)/$(printf '%060d' 0 | tr 0 e)
  mkdir -p "$long"
  echo long > "$long/$(printf '%0120d' 0 | tr 0 f).txt"
  head -c $((4 * 1024 * 1024)) /dev/urandom > "$ob/random-4MiB.bin"
  layer_tar "$l2" "$d/l2.tar"

  # layer 3: deletions as whiteouts, plus an opaque directory
  local l3=$d/l3
  mkdir -p "$l3/opt/bench/dir-to-replace" "$l3/usr/share" "$l3/etc"
  : > "$l3/opt/bench/.wh.remove-me.txt"
  : > "$l3/etc/.wh.motd"
  : > "$l3/usr/share/.wh.doc"
  if [ -d "$l1/usr/share/info" ]; then : > "$l3/usr/share/.wh.info"; fi
  : > "$l3/opt/bench/dir-to-replace/.wh..wh..opq"
  echo 'only file left after opaque whiteout' > "$l3/opt/bench/dir-to-replace/new.txt"
  chmod 0755 "$l3/opt" "$l3/opt/bench" "$l3/usr" "$l3/usr/share" "$l3/etc"
  layer_tar "$l3" "$d/l3.tar"

  build_layout debian \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env LANG=C.UTF-8 --config.env BENCH_IMAGE=debian \
    --config.cmd /usr/local/bin/bench-hello --config.workingdir /root \
    --config.label org.opencontainers.image.title=bench-debian \
    -- "$d/l1.tar:debootstrap --variant=minbase $SUITE $MIRROR" \
       "$d/l2.tar:ADD bench files (symlink, hardlink, setuid, long path, 4MiB)" \
       "$d/l3.tar:RUN rm -rf /usr/share/doc /etc/motd /opt/bench/remove-me.txt; opaque /opt/bench/dir-to-replace"
  rm -rf "$l1" "$l2" "$l3"   # the tars stay for inspection; the trees are large
}

for img in "${want[@]}"; do
  if is_cached "$img"; then bench_log "$img: cached ($IMAGES/$img)"; continue; fi
  bench_log "$img: building"
  case $img in
    busybox) make_busybox ;;
    debian) make_debian ;;
    many-small-files) make_many_small_files ;;
  esac
done
