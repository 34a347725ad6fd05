//go:build !windows

package tokenfile

import (
	"errors"
	"os"
	"syscall"
)

// syncDir syncs the directory dir, so that a rename in it survives a crash
// of the machine. A filesystem that cannot sync a directory is not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EINVAL) {
		err = nil
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
