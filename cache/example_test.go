package cache_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/shuanghuo/shuanghuo/cache"
)

// Find the biggest keys of a primary on its replica, at most 500 keys a
// second, and its hot keys where its policy allows.
func Example() {
	ctx := context.Background()
	primary, err := cache.New(cache.Config{Addr: "127.0.0.1:6379", Password: "…"})
	if err != nil {
		log.Fatal(err) // a *cache.ValidationError names every bad field
	}
	defer primary.Close()
	replica, err := cache.New(cache.Config{Addr: "127.0.0.1:6380", Password: "…", ScanRate: 500})
	if err != nil {
		log.Fatal(err)
	}
	defer replica.Close()

	big, err := primary.BigKeys(ctx, cache.BigKeysOptions{Replica: replica, ScanOptions: cache.ScanOptions{Top: 10}})
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range big.Top {
		fmt.Println(k.Key, k.Type, k.Bytes)
	}
	hot, err := primary.HotKeys(ctx, cache.HotKeysOptions{})
	if errors.Is(err, cache.ErrNoLFU) {
		fmt.Println(err) // names the policy
	} else if err == nil {
		fmt.Println(hot.Top)
	}
}
