// Go (goroutine) peer benchmark for wisp: standard library only, so it
// builds offline with Debian's golang-go; see build.sh for the driver.
module wisp-bench-go

go 1.19
