(cd store/file && go test -run '^$' -bench '^BenchmarkStore$/^(Get|Set|RefreshUncontended|RefreshFetch|ListKeys10000)$' -benchmem -count 3 .)
