(cd store/redis/containertest && go test -count 1 -v -run '^TestStoreOutage$' .)
