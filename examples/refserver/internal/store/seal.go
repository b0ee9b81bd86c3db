package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The server's secrets key seals every secret it must get back (DR group and SSH node
// passwords, binding tokens, the gateway's consumer secrets) with AES-256-GCM. It comes from
// KeyEnv or, without it, from KeyFile in the data directory, created 0600 with a random key
// at first start. The names are the gateway's, which had the key first, so that existing
// data directories still open.
const (
	KeyEnv  = "SHUANGHUO_GATEWAY_KEY"
	KeyFile = "gateway-secrets.key"
)

// Sealer seals and opens secrets with the server's key. Each sealed value is bound to what
// it belongs to (the GCM additional data), so a sealed value copied elsewhere does not open.
type Sealer struct{ aead cipher.AEAD }

// LoadKey returns the secrets key: the value given (64 hex digits or standard base64 of 32
// bytes), else the one in file, which is created with a random key (mode 0600) when absent.
func LoadKey(given, file string) ([]byte, error) {
	if given != "" {
		return parseKey(given)
	}
	if file == "" {
		return nil, errors.New("store: secrets: no key and no key file")
	}
	raw, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("store: secrets: make key: %w", err)
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: secrets: create key file: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("store: secrets: write key file: %w", werr)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: secrets: read key file: %w", err)
	}
	key, err := parseKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, file)
	}
	return key, nil
}

func parseKey(s string) ([]byte, error) {
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, errors.New("store: secrets: the key must be 32 bytes, as 64 hex digits or base64")
}

// NewSealer makes a sealer with a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("store: secrets: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// sealedPrefix starts every sealed value: its format's version.
const sealedPrefix = "v1:"

// binding is the additional data of the parts a value is bound to, NUL-separated.
func binding(to []string) []byte { return []byte(strings.Join(to, "\x00")) }

// Seal encrypts plain bound to the parts given: "v1:" and base64 of nonce and ciphertext.
func (s *Sealer) Seal(plain string, to ...string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("store: secrets: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), binding(to))
	return sealedPrefix + base64.StdEncoding.EncodeToString(out), nil
}

// ErrSealed: a sealed value is malformed, or does not open with this key and binding.
var ErrSealed = errors.New("store: a sealed secret does not open")

// Open decrypts a value Seal made with the same binding.
func (s *Sealer) Open(sealed string, to ...string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, sealedPrefix))
	n := s.aead.NonceSize()
	if !strings.HasPrefix(sealed, sealedPrefix) || err != nil || len(raw) < n {
		return "", fmt.Errorf("%w: malformed", ErrSealed)
	}
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], binding(to))
	if err != nil {
		return "", fmt.Errorf("%w with this server's key (did %s or %s change?), or was sealed for something else", ErrSealed, KeyEnv, KeyFile)
	}
	return string(plain), nil
}
