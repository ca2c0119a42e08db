package schema

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLiteralsKeepTheirValueWhateverStandardConformingStringsSays(t *testing.T) {
	assert.Equal(t, `'global'`, literal("global"))
	assert.Equal(t, `'it''s'`, literal("it's"))
	assert.Equal(t, `E'a\\b'`, literal(`a\b`), "a backslash makes an escape string with the backslash doubled")
	assert.Equal(t, `E'x\\'''`, literal(`x\'`))
}
