# The secondary's copy on a device of its own (BENCH_LAYOUT=separate): a loop device over a
# file in /dev/shm (RAM), which the kernel serves with O_DIRECT like a disk, so the primary's
# disk writes once. Source it from the repository root; needs root (losetup).
#   tgt_device_make SIZE PREFIX   sets tgt (the loop device) and tgt_backing (its tmpfs file)
#   tgt_cleanup                   detaches and removes them, or removes the file tgt
tgt_backing=""
tgt_device_make() {
    tgt_backing="$(mktemp "/dev/shm/$2.XXXXXX")"
    truncate -s "$1" "$tgt_backing"
    tgt="$(losetup --show -f "$tgt_backing")"
}
tgt_cleanup() {
    if [[ -n "$tgt_backing" ]]; then
        [[ -b "$tgt" ]] && losetup -d "$tgt"
        rm -f "$tgt_backing"
    else
        rm -f "$tgt"
    fi
}
