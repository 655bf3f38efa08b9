package job

import (
	"crypto/ed25519"
	"log/slog"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/trainer/internal/config"
)

// SigningKey reads the configured signing key and says at start whether
// published artifacts are signed.
func SigningKey(cfg config.Config, log *slog.Logger) (ed25519.PrivateKey, error) {
	key, err := cfg.Signing.PrivateKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		log.Warn("no signing key (signing.key_file): artifacts are published unsigned, and scorers refuse them unless models.accept_unsigned is on")
		return nil, nil
	}
	log.Info("artifacts are signed", "key_id", model.KeyID(key.Public().(ed25519.PublicKey)))
	return key, nil
}
