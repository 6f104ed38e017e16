"""A signer's means of signing: passkeys, server-held keys, remote signing, certificate ownership."""
