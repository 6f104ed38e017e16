<?php
// Interop client: PHP's stock SoapClient in WSDL mode, called the way Esup-Oasis (ClientFast.php) and Pastell
// (DocapostParapheurSoapClient.php, WSDL mode) call FAST-Parapheur. Written for Parafe's tests, no client code
// copied. Usage: php soapclient.php WSDL_URL CERT_PEM KEY_PEM CA_PEM SIREN PDF_PATH
// Prints one JSON object with what each call returned (or the SoapFault's faultstring).
[$_, $wsdl, $cert, $key, $ca, $siren, $pdfPath] = $argv;

$context = stream_context_create(['ssl' => [
    'local_cert' => $cert, 'local_pk' => $key, 'cafile' => $ca,
    'verify_peer' => true, 'verify_peer_name' => true,
]]);
$client = new SoapClient($wsdl, [
    'soap_version' => SOAP_1_1, 'stream_context' => $context, 'cache_wsdl' => WSDL_CACHE_NONE,
    'trace' => 1, 'exceptions' => true, 'connection_timeout' => 30,
]);
$out = ['functions' => count($client->__getFunctions())];

function attempt(callable $call) {
    try {
        return ['ok' => $call()];
    } catch (SoapFault $f) {
        return ['fault' => $f->faultstring, 'code' => $f->faultcode,
                'detail_message' => isset($f->detail->BusinessException->message)
                    ? $f->detail->BusinessException->message : null];
    }
}

$pdf = file_get_contents($pdfPath);
$name = 'php-' . getmypid() . '.pdf';
// upload, as Esup-Oasis: label, comment '', subscriberId, circuitId, dataFileVO{dataHandler, filename}, email
$r = $client->upload(['label' => 'php', 'comment' => '', 'subscriberId' => $siren, 'circuitId' => 'bureautique',
    'dataFileVO' => ['dataHandler' => $pdf, 'filename' => $name], 'email_destinataire' => 'dest@example.org']);
$id = trim($r->return);
$out['upload'] = $id;
$out['request_has_ns1_upload'] = strpos($client->__getLastRequest(), ':upload>') !== false;
$out['request_headers'] = $client->__getLastRequestHeaders();

// history: one entry decodes to an object (not an array)
$h = $client->history(['documentId' => $id]);
$out['history'] = is_array($h->return) ? array_map(fn($e) => $e->stateName, $h->return) : [$h->return->stateName];
$out['history_date'] = is_array($h->return) ? $h->return[0]->date : $h->return->date;

// download as Esup-Oasis (fdc/acquit 'false'), content must be the bytes
$d = $client->download(['documentId' => $id, 'fdc' => 'false', 'acquit' => 'false']);
$out['download_same'] = ($d->return->content === $pdf);
$out['download_documentId'] = $d->return->documentId;
$f = $client->getFdc(['documentId' => $id]);
$out['fdc_is_pdf'] = substr($f->return->content, 0, 4) === '%PDF';

// getCircuits as Pastell: array_column(->return, 'circuitId')
$c = $client->getCircuits(['siren' => $siren]);
$out['circuits'] = array_column(array_map(fn($x) => (array)$x, $c->return), 'circuitId');
// test connection as Pastell: listRemainingAcknowledgements, an empty answer decodes to an object without return
$l = $client->listRemainingAcknowledgements(['siren' => $siren]);
$out['remaining_acks_empty'] = !isset($l->return);

// faults real clients read
$out['duplicate'] = attempt(fn() => $client->upload(['label' => 'php', 'comment' => '', 'subscriberId' => $siren,
    'circuitId' => 'bureautique', 'dataFileVO' => ['dataHandler' => $pdf, 'filename' => $name]]));
$out['unknown_history'] = attempt(fn() => $client->history(['documentId' => '100999999']));
$out['unknown_siren'] = attempt(fn() => $client->listRemainingAcknowledgements(['siren' => '000000000']));
// Pastell's getRefusalMessage(['documentId' => …]): SoapClient drops the unknown key, sends an empty element
$out['refusal_pastell'] = attempt(fn() => $client->getRefusalMessage(['documentId' => $id]));
$out['refusal_request_empty'] = strpos($client->__getLastRequest(), 'documentId') === false;
$out['refusal'] = attempt(fn() => $client->getRefusalMessage(['nodeRefId' => $id]));
$out['delete'] = attempt(fn() => $client->delete(['documentId' => $id]));
$out['history_after_delete'] = attempt(fn() => $client->history(['documentId' => $id]));
echo json_encode($out, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
