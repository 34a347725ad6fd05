package tokenfile

// syncDir does nothing on Windows, which cannot sync a directory; NTFS
// journals the rename. (A rename there fails while a reader holds the file
// open; the Agent tries again at its next poll.)
func syncDir(string) error { return nil }
