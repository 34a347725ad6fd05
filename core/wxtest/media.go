package wxtest

import (
	"io"
	"mime"
	"net/http"
	"strconv"
)

// Error codes of the media APIs.
const (
	codeInvalidMediaType = 40004
	codeInvalidMediaID   = 40007
	codeMediaMissing     = 41005
)

func init() {
	errmsgs[codeInvalidMediaType] = "invalid media type"
	errmsgs[codeInvalidMediaID] = "invalid media_id"
	errmsgs[codeMediaMissing] = "media data missing"
}

// maxMedia bounds an uploaded file (WeChat allows 10 MB for video).
const maxMedia = 10 << 20

// mediaFile is an uploaded temporary media file.
type mediaFile struct {
	name        string
	contentType string
	data        []byte
}

type mediaUploadReply struct {
	Type      string `json:"type"`
	MediaID   string `json:"media_id"`
	CreatedAt int64  `json:"created_at"`
}

func (s *Server) serveMediaUpload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, codeRequirePOST)
		return
	}
	q := r.URL.Query()
	if code := s.tokenStatus(q.Get("access_token")); code != 0 {
		writeError(w, code)
		return
	}
	switch q.Get("type") {
	case "image", "voice", "video", "thumb":
	default:
		writeError(w, codeInvalidMediaType)
		return
	}
	if err := r.ParseMultipartForm(maxMedia); err != nil {
		writeError(w, codeMediaMissing)
		return
	}
	f, h, err := r.FormFile("media")
	if err != nil {
		writeError(w, codeMediaMissing)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMedia))
	if err != nil || len(data) == 0 {
		writeError(w, codeMediaMissing)
		return
	}
	m := &mediaFile{name: h.Filename, contentType: h.Header.Get("Content-Type"), data: data}
	s.mu.Lock()
	id := newValue(48)
	s.media[id] = m
	now := s.nowLocked()
	s.mu.Unlock()
	writeJSON(w, mediaUploadReply{Type: q.Get("type"), MediaID: id, CreatedAt: now.Unix()})
}

func (s *Server) serveMediaGet(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, codeRequireGET)
		return
	}
	q := r.URL.Query()
	code := s.tokenStatus(q.Get("access_token"))
	s.mu.Lock()
	m := s.media[q.Get("media_id")]
	s.mu.Unlock()
	if code == 0 && m == nil {
		code = codeInvalidMediaID
	}
	if code != 0 {
		// The media download labels its JSON errors text/plain.
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, `{"errcode":`+strconv.Itoa(code)+`,"errmsg":"`+errmsgs[code]+` rid: `+rid()+`"}`)
		return
	}
	ct := m.contentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": m.name}))
	w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
	_, _ = w.Write(m.data)
}
