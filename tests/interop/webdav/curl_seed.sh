#!/usr/bin/env bash
# The cURL commands of the interface document (spec §4.6, API-REFERENCE §9.6), run as written against a Parafe
# server; only the addresses, the certificate and the file names are parameters.
#
#   curl_seed.sh AdresseDuCircuit AdresseDesRetours Certificat.pem MotDePasse Fichier.xml ServClient
#
# AdresseDuCircuit  https://…/partage/webdav/clients/SIREN/in/circuit  (the PUT goes to "AdresseDuCircuit/" so
#                   that curl appends the file name, as the document's example intends)
# AdresseDesRetours https://…/partage/webdav/clients/SIREN/out/circuit (the document writes the in/ address for
#                   GET and DELETE too, G-37; returns are in out/, DECISIONS D6)
# Certificat.pem    client certificate and its private key, encrypted with MotDePasse
# ServClient        the folder where returns are stored on the client's side
# The server's CA comes from CURL_CA_BUNDLE (production uses a public CA, so the document has no --cacert).
set -euo pipefail
AdresseDuCircuit="$1"; AdresseDesRetours="$2"; Certificat="$3"; MotDePasse="$4"; Fichier="$5"; ServClient="$6"
cd "$(dirname "$Fichier")"
Fichier="$(basename "$Fichier")"

# PUT :
curl -T "$Fichier" -E "$Certificat:$MotDePasse" "$AdresseDuCircuit/"
# PROPFIND :
curl -E "$Certificat:$MotDePasse" -H depth:1 -X PROPFIND "$AdresseDesRetours" > "$ServClient/liste.txt"
# GET :
curl -E "$Certificat:$MotDePasse" "$AdresseDesRetours/Retour.xml" > "$ServClient/Retour.xml"
# DELETE :
curl -E "$Certificat:$MotDePasse" --request DELETE "$AdresseDesRetours/Retour.xml"
