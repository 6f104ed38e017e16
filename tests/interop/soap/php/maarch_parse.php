<?php
// Reads a SOAP answer the way Maarch Courrier's FastParapheurController does (simplexml on the raw body):
// Body->children(sei)->{op}Response->children()->return, faults as Body->Fault[0]->children()->faultstring.
// Written for Parafe's tests, no client code copied. Usage: php maarch_parse.php OPERATION < body.xml
$op = $argv[1];
$xml = simplexml_load_string(stream_get_contents(STDIN));
if ($xml === false) { echo json_encode(['error' => 'not XML']); exit(0); }
$body = $xml->children('http://schemas.xmlsoap.org/soap/envelope/')->Body;
$out = [];
if (isset($body->Fault)) {
    $out['fault'] = (string)$body->Fault[0]->children()->faultstring;
} else {
    $response = $body->children('http://sei.ws.fast.cdc.com/')->{$op . 'Response'};
    $returns = $response->children()->return;
    $out['count'] = count($returns);
    $out['return'] = (string)$returns;
    if ($op === 'download') {
        $out['documentId'] = (string)$returns->documentId;
        $out['content_sha256'] = hash('sha256', base64_decode((string)$returns->content));
    }
    if ($op === 'history') {
        $out['states'] = [];
        foreach ($returns as $entry) { $out['states'][] = (string)$entry->stateName; }
    }
}
echo json_encode($out, JSON_UNESCAPED_UNICODE), "\n";
