# bench/results.awk - the one parser of wisp-bench result lines
# ("bench=W impl=I threads=N n=COUNT seconds=S ns_per_op=X ..."), shared by
# bench/report.sh and bench/ab.sh, which prepend it to their programs:
#   awk "$(cat bench/results.awk)"'{ collect($0, "ns_per_op") } END { ... }'

# The value of key=value field `name` in line, or "".
function field(line, name,   i, n, kv, parts) {
    n = split(line, parts, " ")
    for (i = 1; i <= n; i++) {
        split(parts[i], kv, "=")
        if (kv[1] == name)
            return kv[2]
    }
    return ""
}

# Sorts the space-separated numbers of list into a[1..n]; returns n.
function sorted(list, a,   n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) {
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--)
            a[j + 1] = a[j]
        a[j + 1] = t
    }
    return n
}

function median(list,   a, n) {
    n = sorted(list, a)
    if (n == 0)
        return ""
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

function minimum(list,   a, n) {
    n = sorted(list, a)
    return n ? a[1] : ""
}

function maximum(list,   a, n) {
    n = sorted(list, a)
    return n ? a[n] : ""
}

# Collects a result line into vals[bench, impl] (a list) and the orders
# in which benches and impls first appeared (order[], nb; iorder[], ni).
function collect(line, metric,   b, im, v) {
    b = field(line, "bench"); im = field(line, "impl"); v = field(line, metric)
    if (b == "" || im == "" || v == "")
        return
    vals[b, im] = vals[b, im] " " v
    if (!(b in seen_b)) { seen_b[b] = 1; order[++nb] = b }
    if (!(im in seen_i)) { seen_i[im] = 1; iorder[++ni] = im }
}
