"""``parafe-signer``: the signing helper that runs on the signer's own machine (spec §1.2.2 « plugin de signature »).

It holds the signer's key (PKCS#12 file or PKCS#11 token / smart card), listens on 127.0.0.1 only, and answers
the portal page (:mod:`parafe.portal.signing`) following the Signature engine's remote-signing protocol
(:mod:`parafe.signing.remote`): the page sends what must be signed, the helper shows it in its own confirmation
page and signs only after the signer clicks « Signer ». The private key never leaves the machine.
See :mod:`parafe.signer.server` for the HTTP API and ``docs/portal.md`` for the set-up.
"""
