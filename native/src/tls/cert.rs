//! What the engine reads from an X.509 certificate: its subject alternative
//! names, its subject as Envoy prints it (RFC 2253, OpenSSL's `XN_FLAG_RFC2253`),
//! and whether a certificate claiming a SPIFFE ID keeps the X.509-SVID rules.

use std::borrow::Cow;
use std::fmt::Write;
use std::net::IpAddr;

use x509_parser::der_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::prelude::*;

/// The facts of one certificate that verification, policy and headers use.
#[derive(Debug, Default)]
pub(crate) struct CertFacts {
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    pub email_sans: Vec<String>,
    /// IP SANs as text (`10.0.0.1`, `::1`), as Envoy matches them.
    pub ip_sans: Vec<String>,
    pub subject: String,
    /// Why a certificate with a `spiffe://` URI SAN is not a valid X.509-SVID leaf.
    pub svid_violation: Option<&'static str>,
}

/// Parse a DER certificate. Errors name what was malformed.
pub(crate) fn read(der: &[u8]) -> Result<CertFacts, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let mut facts = CertFacts {
        subject: rfc2253(cert.subject()),
        ..CertFacts::default()
    };
    if let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(u) => facts.uri_sans.push((*u).to_owned()),
                GeneralName::DNSName(d) => facts.dns_sans.push((*d).to_owned()),
                GeneralName::RFC822Name(e) => facts.email_sans.push((*e).to_owned()),
                GeneralName::IPAddress(b) => facts.ip_sans.extend(ip_text(b)),
                _ => {}
            }
        }
    }
    facts.svid_violation = svid_violation(&cert, &facts.uri_sans).map_err(|e| e.to_string())?;
    Ok(facts)
}

fn ip_text(octets: &[u8]) -> Option<String> {
    let ip = match octets.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(octets).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(octets).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

/// The X.509-SVID leaf rules (SPIFFE X509-SVID §4, the ones `fastmesh.ca.verify_svid`
/// applies): exactly one URI SAN, not a CA, a critical KeyUsage with digitalSignature
/// and without keyCertSign or cRLSign. Only for certificates that carry a SPIFFE ID.
fn svid_violation(
    cert: &X509Certificate<'_>,
    uri_sans: &[String],
) -> Result<Option<&'static str>, X509Error> {
    let is_spiffe = |u: &String| {
        u.get(..9)
            .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
    };
    if !uri_sans.iter().any(is_spiffe) {
        return Ok(None);
    }
    if uri_sans.len() != 1 {
        return Ok(Some("an SVID has exactly one URI SAN"));
    }
    if cert.basic_constraints()?.is_some_and(|bc| bc.value.ca) {
        return Ok(Some("an SVID leaf must not be a CA"));
    }
    Ok(match cert.key_usage()? {
        None => Some("an SVID leaf has a KeyUsage"),
        Some(ku) if !ku.critical => Some("an SVID leaf's KeyUsage is critical"),
        Some(ku) if !ku.value.digital_signature() => {
            Some("an SVID leaf's KeyUsage has digitalSignature")
        }
        Some(ku) if ku.value.key_cert_sign() || ku.value.crl_sign() => {
            Some("an SVID leaf's KeyUsage has neither keyCertSign nor cRLSign")
        }
        Some(_) => None,
    })
}

/// A distinguished name the way OpenSSL's `X509_NAME_print_ex(.., XN_FLAG_RFC2253)`
/// prints it, which is what Envoy shows: last RDN first, `,` between RDNs, `+`
/// inside one, RFC 2253 escapes, non-ASCII bytes and controls as `\XX`, values of
/// unknown attributes or non-string types dumped as `#` and their DER in hex.
pub(crate) fn rfc2253(name: &X509Name<'_>) -> String {
    let entries: Vec<(usize, &AttributeTypeAndValue<'_>)> = name
        .iter_rdn()
        .enumerate()
        .flat_map(|(set, rdn)| rdn.iter().map(move |atv| (set, atv)))
        .collect();
    let mut out = String::new();
    let mut previous = None;
    for (set, atv) in entries.into_iter().rev() {
        if let Some(p) = previous {
            out.push(if p == set { '+' } else { ',' });
        }
        previous = Some(set);
        let oid = atv.attr_type().to_id_string();
        match short_name(&oid) {
            Some(sn) => {
                out.push_str(sn);
                out.push('=');
                match text(atv.attr_value()) {
                    Some(t) => escape(&mut out, &t),
                    None => dump(&mut out, atv.attr_value()),
                }
            }
            None => {
                out.push_str(&oid);
                out.push('=');
                dump(&mut out, atv.attr_value());
            }
        }
    }
    out
}

/// OpenSSL's short names for the attributes certificates use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// The value of a string-typed attribute as text; `None` for other types.
fn text<'a>(v: &'a Any<'_>) -> Option<Cow<'a, str>> {
    let data: &'a [u8] = v.data;
    match v.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(Cow::Borrowed),
        // T.61 read as Latin-1, as OpenSSL does.
        Tag::T61String => Some(Cow::Owned(data.iter().map(|&b| char::from(b)).collect())),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok().map(Cow::Owned)
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect::<Option<String>>()
            .map(Cow::Owned),
        _ => None,
    }
}

/// RFC 2253 escaping with OpenSSL's `ESC_CTRL` and `ESC_MSB`.
fn escape(out: &mut String, v: &str) {
    for (i, c) in v.char_indices() {
        let first = i == 0;
        let last = i + c.len_utf8() == v.len();
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if first => out.push_str("\\#"),
            ' ' if first || last => out.push_str("\\ "),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:02X}", c as u32);
            }
            c if !c.is_ascii() => {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    let _ = write!(out, "\\{b:02X}");
                }
            }
            c => out.push(c),
        }
    }
}

/// `#` and the value's whole DER encoding in upper-case hex.
fn dump(out: &mut String, v: &Any<'_>) {
    out.push('#');
    if let Ok(der) = v.to_der_vec() {
        for b in der {
            let _ = write!(out, "{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(der: &[u8]) -> String {
        let (_, n) = X509Name::from_der(der).expect("a DER name");
        rfc2253(&n)
    }

    /// One attribute: OID bytes, value tag, value bytes.
    type Atv<'a> = (&'a [u8], u8, &'a [u8]);

    /// A DER name: SEQUENCE OF SET OF (OID, value), one SET per RDN.
    fn dn(rdns: &[&[Atv<'_>]]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            assert!(body.len() < 128);
            let mut v = vec![tag, body.len() as u8];
            v.extend_from_slice(body);
            v
        }
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, tag, value) in rdn.iter() {
                let mut atv = tlv(0x06, oid);
                atv.extend(tlv(*tag, value));
                set.extend(tlv(0x30, &atv));
            }
            seq.extend(tlv(0x31, &set));
        }
        tlv(0x30, &seq)
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;

    #[test]
    fn names_print_last_rdn_first_with_short_names() {
        let der = dn(&[
            &[(C, PRINTABLE, b"US")],
            &[(O, UTF8, b"Lyft")],
            &[(CN, UTF8, b"Test Client")],
        ]);
        assert_eq!(name(&der), "CN=Test Client,O=Lyft,C=US");
    }

    #[test]
    fn special_characters_are_escaped_as_rfc_2253_says() {
        let der = dn(&[
            &[(O, UTF8, b"Sue, Grabbit and Runn")],
            &[(CN, UTF8, b"#lead;\"q\" ")],
        ]);
        assert_eq!(
            name(&der),
            "CN=\\#lead\\;\\\"q\\\"\\ ,O=Sue\\, Grabbit and Runn"
        );
    }

    #[test]
    fn multi_valued_rdns_join_with_plus_and_non_ascii_is_hex_escaped() {
        let der = dn(&[
            &[(C, PRINTABLE, b"GB")],
            &[(OU, UTF8, b"Sales"), (CN, UTF8, "J. Sm\u{e9}th".as_bytes())],
        ]);
        assert_eq!(name(&der), "CN=J. Sm\\C3\\A9th+OU=Sales,C=GB");
    }

    #[test]
    fn unknown_attributes_are_dumped_as_der_hex() {
        let der = dn(&[&[(&[0x2a, 0x03], UTF8, b"x")]]);
        assert_eq!(name(&der), "1.2.3=#0C0178");
    }
}
