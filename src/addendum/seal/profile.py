"""The strict profile of an RFC 3161 timestamp response: every byte the TSA's signature does not cover is pinned, but for the certificates' order.

openssl checks a token's signature, and that covers the TSTInfo (through the messageDigest attribute) and the signed
attributes; the rest of the response is framing it reads leniently: the status, CMS version numbers, algorithm
identifiers and their parameters, the certificates, unsigned attributes. A changed byte there leaves the signature
good, so this check refuses every form but the one RFC 3161 and RFC 5652 prescribe (in canonical DER, see der.py):
status granted; SignedData version 3; one SignerInfo, version 1 when it names its signer by issuer and serial number,
3 by subject key identifier; its digest algorithm the one listed in digestAlgorithms, with parameters absent or NULL;
its signature algorithm the one the signer's key type and that digest call for; no CRLs, no unsigned attributes; the
signer's certificate in the token and hashed, byte for byte, by its signing-certificate attribute (which the signature
covers). Other certificates are returned, for the caller to check that they chain to the trusted CA certificates.
Their order is the one thing left free: RFC 5652 gives the certificates none, and openssl does not sort them into
DER's, so a rule here would refuse real tokens (the archive's SSH signature covers the manifest's token whole).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from addendum.seal import der
from addendum.seal.der import DerError, Value

SIGNED_DATA = "1.2.840.113549.1.7.2"
TST_INFO = "1.2.840.113549.1.9.16.1.4"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"
SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
SUBJECT_KEY_IDENTIFIER = "2.5.29.14"
DIGESTS = {"1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384",
           "2.16.840.1.101.3.4.2.3": "sha512"}
EC_KEY, RSA_KEY = "1.2.840.10045.2.1", "1.2.840.113549.1.1.1"
ECDSA_WITH = {"sha1": "1.2.840.10045.4.1", "sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3",
              "sha512": "1.2.840.10045.4.3.4"}
RSA_WITH = {"sha1": "1.2.840.113549.1.1.5", "sha256": "1.2.840.113549.1.1.11", "sha384": "1.2.840.113549.1.1.12",
            "sha512": "1.2.840.113549.1.1.13"}
_KEY_NAMES = {EC_KEY: "EC", RSA_KEY: "RSA"}
_NULL = b"\x05\x00"
GRANTED = b"\x30\x03\x02\x01\x00"  # PKIStatusInfo { status granted (0) }, without text or failure information


class ProfileError(ValueError):
    """What in the token is not as RFC 3161 issues it."""


@dataclass(frozen=True)
class TokenProfile:
    """What a token that holds to the profile carries, for the checks openssl and the archive make next."""

    signer: bytes  # the TSA's certificate (DER), as the token holds it
    others: tuple[bytes, ...]  # any other certificate the token holds: each must chain to the trusted CAs
    # The signature algorithm's encoding: an RSA key allows two (rsaEncryption, or shaNWithRSAEncryption) that differ
    # in one byte, so tokens of one TSA certificate are held to one form (see archive/sealing.py).
    signature_algorithm: bytes = b""


def check_profile(token: bytes) -> TokenProfile:
    """The token's certificates when it is exactly as the profile above says; ProfileError says what is not."""
    try:
        return _check(der.read(token))
    except DerError as exc:
        raise ProfileError(f"not canonical DER: {exc}") from None
    except ProfileError:
        raise
    except (IndexError, ValueError, StopIteration, KeyError, TypeError) as exc:  # a field missing, or of another type
        raise ProfileError(f"not the structure of a timestamp response ({exc or 'a field is missing'})") from None


def _expect(value: Value, tag: int, what: str, count: int | None = None) -> tuple[Value, ...]:
    if value.tag != tag:
        raise ProfileError(f"{what} at byte {value.start} has tag {value.tag:#04x}, not {tag:#04x}")
    if count is not None and len(value.children) != count:
        raise ProfileError(f"{what} at byte {value.start} has {len(value.children)} fields, not {count}")
    return value.children


def _check(response: Value) -> TokenProfile:
    status, token = _expect(response, der.SEQUENCE, "the response", 2)
    if status.encoding != GRANTED:
        raise ProfileError(f"its status (byte {status.start}) is not a plain \"granted\"")
    content_type, wrapped = _expect(token, der.SEQUENCE, "the token (ContentInfo)", 2)
    if content_type.oid() != SIGNED_DATA:
        raise ProfileError(f"its content type (byte {content_type.start}) is {content_type.oid()}, not signed data")
    (signed,) = _expect(wrapped, 0xA0, "the token's content", 1)
    fields = list(_expect(signed, der.SEQUENCE, "SignedData"))
    version, digest_set, encapsulated = fields[:3]
    certificates = fields[3] if len(fields) > 3 and fields[3].tag == 0xA0 else None
    rest = fields[4:] if certificates is not None else fields[3:]
    if len(rest) != 1 or rest[0].tag != der.SET:
        raise ProfileError(f"SignedData (byte {signed.start}) holds CRLs or fields RFC 3161 tokens do not have")
    if version.integer() != 3:
        raise ProfileError(f"SignedData version {version.integer()} (byte {version.start}), not 3 as RFC 5652 prescribes "
                           "for encapsulated TSTInfo")
    (listed_digest,) = _expect(digest_set, der.SET, "digestAlgorithms", 1)
    _check_tst_info(encapsulated)
    (signer_info,) = _expect(rest[0], der.SET, "signerInfos", 1)
    certs = _expect(certificates, 0xA0, "the certificates") if certificates is not None else ()
    return _check_signer(signer_info, listed_digest, certs)


def _check_tst_info(encapsulated: Value) -> None:
    kind, wrapped = _expect(encapsulated, der.SEQUENCE, "encapContentInfo", 2)
    if kind.oid() != TST_INFO:
        raise ProfileError(f"its content (byte {kind.start}) is {kind.oid()}, not a TSTInfo")
    (octets,) = _expect(wrapped, 0xA0, "eContent", 1)
    _expect(octets, der.OCTET_STRING, "eContent")
    try:
        info = der.read(octets.content)
    except DerError as exc:  # its offsets count from the TSTInfo's first byte: say where that is in the token
        raise ProfileError(f"the TSTInfo (from byte {octets.start + octets.header}) is not canonical DER: {exc}") from None
    version = _expect(info, der.SEQUENCE, "TSTInfo")[0]
    if version.integer() != 1:
        raise ProfileError(f"TSTInfo version {version.integer()}, not 1")


def _algorithm(value: Value, what: str) -> tuple[str, bytes | None]:
    """(OID, the parameters' encoding or None when absent)."""
    children = _expect(value, der.SEQUENCE, what)
    if len(children) not in (1, 2):
        raise ProfileError(f"{what} at byte {value.start} is not an AlgorithmIdentifier")
    return children[0].oid(), children[1].encoding if len(children) == 2 else None


def _check_signer(signer_info: Value, listed_digest: Value, certs: tuple[Value, ...]) -> TokenProfile:
    fields = _expect(signer_info, der.SEQUENCE, "SignerInfo")
    if len(fields) != 6 or fields[3].tag != 0xA0:
        raise ProfileError(f"SignerInfo (byte {signer_info.start}) has unsigned attributes or lacks signed ones")
    version, sid, digest, signed_attributes, signature_algorithm, signature = fields
    by_serial = sid.tag == der.SEQUENCE
    if version.integer() != (1 if by_serial else 3):
        raise ProfileError(f"SignerInfo version {version.integer()} (byte {version.start}), but it names its signer by "
                           + ("issuer and serial number (version 1)" if by_serial else "subject key identifier (version 3)"))
    for cert in certs:
        if cert.tag != der.SEQUENCE:
            raise ProfileError(f"the token holds a certificate of another kind than X.509 (byte {cert.start})")
        _, outer_algorithm, _ = _expect(cert, der.SEQUENCE, "a certificate", 3)
        inner_algorithm = _tbs_fields(cert)[1]
        if outer_algorithm.encoding != inner_algorithm.encoding:
            raise ProfileError(f"a certificate's signature algorithm (byte {outer_algorithm.start}) is not the one it signed")
    signer = next((cert for cert in certs if _names(cert, sid)), None)
    if signer is None:
        raise ProfileError("the TSA's certificate is not in the token (it was asked for), or SignerInfo names another")
    if digest.encoding != listed_digest.encoding:
        raise ProfileError(f"the signer's digest algorithm (byte {digest.start}) is not the one digestAlgorithms lists")
    digest_oid, parameters = _algorithm(digest, "the digest algorithm")
    if digest_oid not in DIGESTS or parameters not in (None, _NULL):
        raise ProfileError(f"the digest algorithm (byte {digest.start}) is {digest_oid} with parameters "
                           f"{parameters.hex() if parameters else 'absent'}: not a hash this profile knows")
    _check_signed_attributes(signed_attributes, signer)
    _check_signature_algorithm(signature_algorithm, signer, DIGESTS[digest_oid])
    _expect(signature, der.OCTET_STRING, "the signature")
    return TokenProfile(signer.encoding, tuple(cert.encoding for cert in certs if cert is not signer),
                        signature_algorithm.encoding)


def _tbs_fields(cert: Value) -> tuple[Value, ...]:
    """serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, and any extensions ([3])."""
    return tuple(field for field in cert.children[0].children if field.tag != 0xA0)


def _names(cert: Value, sid: Value) -> bool:
    if sid.tag == der.SEQUENCE:
        issuer, serial = _expect(sid, der.SEQUENCE, "the signer's issuer and serial number", 2)
        fields = _tbs_fields(cert)
        return issuer.encoding == fields[2].encoding and serial.encoding == fields[0].encoding
    if sid.tag != 0x80:
        raise ProfileError(f"SignerInfo names its signer in a form RFC 5652 does not have (byte {sid.start})")
    return _subject_key_identifier(cert) == sid.content


def _subject_key_identifier(cert: Value) -> bytes | None:
    for wrapper in (field for field in cert.children[0].children if field.tag == 0xA3):
        for extension in wrapper.children[0].children:
            if extension.children[0].oid() == SUBJECT_KEY_IDENTIFIER:
                return der.read(extension.children[-1].content).content
    return None


def _check_signed_attributes(attributes: Value, signer: Value) -> None:
    encodings = [attribute.encoding for attribute in attributes.children]
    if encodings != sorted(encodings):
        raise ProfileError(f"the signed attributes (byte {attributes.start}) are not in DER's order")
    found: dict[str, Value] = {}
    for attribute in attributes.children:
        kind, values = _expect(attribute, der.SEQUENCE, "a signed attribute", 2)
        if kind.oid() in found:
            raise ProfileError(f"the signed attribute {kind.oid()} is there twice")
        found[kind.oid()] = _expect(values, der.SET, "a signed attribute's values", 1)[0]
    if CONTENT_TYPE not in found or found[CONTENT_TYPE].oid() != TST_INFO or MESSAGE_DIGEST not in found:
        raise ProfileError("the signed attributes lack the content type (TSTInfo) or the message digest")
    if SIGNING_CERTIFICATE_V2 in found:
        first = _expect(found[SIGNING_CERTIFICATE_V2], der.SEQUENCE, "signingCertificateV2")[0].children[0]
        fields = first.children
        algorithm = _algorithm(fields[0], "the certificate hash algorithm")[0] if fields[0].tag == der.SEQUENCE else \
            "2.16.840.1.101.3.4.2.1"  # sha256, the default
        certificate_hash = next(field for field in fields if field.tag == der.OCTET_STRING).content
        name = DIGESTS.get(algorithm)
    elif SIGNING_CERTIFICATE in found:
        first = _expect(found[SIGNING_CERTIFICATE], der.SEQUENCE, "signingCertificate")[0].children[0]
        certificate_hash, name = first.children[0].content, "sha1"
    else:
        raise ProfileError("the signed attributes do not identify the TSA's certificate (no signing-certificate attribute)")
    if name is None or hashlib.new(name, signer.encoding).digest() != certificate_hash:
        raise ProfileError("the TSA's certificate in the token is not the one its signed attributes identify (a byte of "
                           "it changed)")


def _check_signature_algorithm(value: Value, signer: Value, digest: str) -> None:
    key_type = _algorithm(_tbs_fields(signer)[5].children[0], "the TSA's key type")[0]
    oid, parameters = _algorithm(value, "the signature algorithm")
    if key_type == EC_KEY:
        good = oid == ECDSA_WITH.get(digest) and parameters is None  # RFC 5758 §3.2: parameters absent
    elif key_type == RSA_KEY:
        good = oid in (RSA_KEY, RSA_WITH.get(digest)) and parameters == _NULL  # RFC 5754 §3.2 allows either form
    else:
        good = False
    if not good:
        raise ProfileError(f"the signature algorithm (byte {value.start}) is {oid}"
                           f"{' with parameters' if parameters else ''}: not the one a {_KEY_NAMES.get(key_type, key_type)} "
                           f"key and {digest} call for")

