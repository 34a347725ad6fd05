package filestore

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// syncDir does nothing on Windows, which cannot sync a directory; NTFS
// journals the rename.
func syncDir(string) error { return nil }

// replaceFile renames tmp over dst. A rename collides with a reader that
// has dst open (Windows refuses to replace an open file), so it is retried
// for up to about 100 ms.
func replaceFile(tmp, dst string) error {
	var err error
	for i := 0; i < 20; i++ {
		if err = os.Rename(tmp, dst); err == nil || !sharingViolation(err) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return err
}

func sharingViolation(err error) bool {
	return errors.Is(err, windows.ERROR_SHARING_VIOLATION) || errors.Is(err, windows.ERROR_ACCESS_DENIED) ||
		errors.Is(err, windows.ERROR_LOCK_VIOLATION)
}
