/**
 * Server certificates of every kind a TLS name check must tell apart, made with openssl at test
 * time: one for an IP address, one for a DNS name, one for another name, one naming only
 * `localhost`, and one for the right address from a CA the client does not trust.
 *
 * @module
 */
import { createTestCertificates, issueCertificate } from "./test_apiserver.ts";

/** A server certificate and its key, as nats-server's `tls { cert_file, key_file }` takes them. */
export interface ServerCertificate {
  readonly certFile: string;
  readonly keyFile: string;
}

/** What {@linkcode createServerCertificates} wrote. */
export interface ServerCertificates {
  /** The CA the client trusts (`NATS_TLS_CA_FILE`). */
  readonly caFile: string;
  /** `IP:127.0.0.1` only. */
  readonly ip: ServerCertificate;
  /** `IP:127.0.0.1` and `DNS:localhost`: for test clients on nats.js's Node transport (see #303). */
  readonly ipAndLocalhost: ServerCertificate;
  /** `DNS:localhost` only. */
  readonly localhost: ServerCertificate;
  /** `DNS:nats.example` only: the right CA, the wrong name for every loopback address. */
  readonly wrongName: ServerCertificate;
  /** `IP:127.0.0.1`, signed by a CA the client does not trust. */
  readonly untrusted: ServerCertificate;
}

const SERVER_EXTENSIONS = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n" +
  "extendedKeyUsage=serverAuth\n";

/** Write a CA and the server certificates of {@linkcode ServerCertificates} into `dir`. */
export async function createServerCertificates(dir: string): Promise<ServerCertificates> {
  const { caFile, certFile, keyFile } = await createTestCertificates(dir);
  const issue = (name: string, san: string, at = dir) =>
    issueCertificate(at, name, {
      subject: `/CN=${name}`,
      extensions: `subjectAltName=${san}\n${SERVER_EXTENSIONS}`,
    });
  const other = `${dir}/other-ca`;
  await Deno.mkdir(other);
  await createTestCertificates(other);
  return {
    caFile,
    ip: await issue("ip", "IP:127.0.0.1"),
    ipAndLocalhost: { certFile, keyFile },
    localhost: await issue("localhost", "DNS:localhost"),
    wrongName: await issue("wrong-name", "DNS:nats.example"),
    untrusted: await issue("untrusted", "IP:127.0.0.1", other),
  };
}

/**
 * A client certificate for `/CN=<commonName>` signed by the CA {@linkcode createServerCertificates}
 * wrote into `dir` (for nats-server's `verify: true`).
 */
export function issueClientCertificate(
  dir: string,
  commonName: string,
): Promise<ServerCertificate> {
  return issueCertificate(dir, `client-${commonName}`, {
    subject: `/CN=${commonName}`,
    extensions: "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n" +
      "extendedKeyUsage=clientAuth\n",
  });
}

/** nats-server's `tls` block for `cert`. */
export function tlsBlock(cert: ServerCertificate): { cert_file: string; key_file: string } {
  return { cert_file: cert.certFile, key_file: cert.keyFile };
}
