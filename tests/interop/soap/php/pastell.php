<?php
// Interop client built exactly as Pastell's FAST connector builds its SoapClient (FastParapheur::getClient,
// research note docs/spec/real-clients.md §2): 'login' => '' (so PHP sends "Authorization: Basic Og=="),
// 'local_cert' => one PEM holding the encrypted key and the certificate, 'passphrase', peer verification off.
// Written for Parafe's tests, no Pastell code copied.
// Usage: php pastell.php BASE_URL KEYCERT_PEM PASSPHRASE SIREN PDF_PATH
// Prints one JSON object with what each call returned (or the SoapFault's faultstring).
[$_, $base, $keycert, $passphrase, $siren, $pdfPath] = $argv;

$context = stream_context_create(['ssl' => ['verify_peer' => false, 'verify_peer_name' => false]]);
$out = [];
try {
    $client = new SoapClient($base . '/parapheur-soap/soap/v1/Documents?wsdl', [
        'login' => '', 'local_cert' => $keycert, 'passphrase' => $passphrase,
        'stream_context' => $context, 'cache_wsdl' => WSDL_CACHE_NONE, 'trace' => 1, 'exceptions' => true,
    ]);
} catch (SoapFault $f) {
    echo json_encode(['wsdl_fault' => $f->faultstring]);
    exit(0);
}
$out['functions'] = count($client->__getFunctions());

function attempt(callable $call) {
    try {
        return ['ok' => $call()];
    } catch (SoapFault $f) {
        return ['fault' => $f->faultstring];
    }
}

// "test connection" as Pastell
$out['acks'] = attempt(function () use ($client, $siren) {
    $l = $client->listRemainingAcknowledgements(['siren' => $siren]);
    return isset($l->return) ? $l->return : [];
});
$out['request_headers'] = $client->__getLastRequestHeaders();
$out['circuits'] = attempt(function () use ($client, $siren) {
    $c = $client->getCircuits(['siren' => $siren]);
    return array_column(array_map(fn($x) => (array)$x, $c->return), 'circuitId');
});
$pdf = file_get_contents($pdfPath);
$out['upload'] = attempt(function () use ($client, $siren, $pdf) {
    $r = $client->upload(['subscriberId' => $siren, 'circuitId' => 'bureautique', 'label' => 'pastell',
        'comment' => '', 'dataFileVO' => ['filename' => 'pastell-' . getmypid() . '.pdf', 'dataHandler' => $pdf]]);
    return trim($r->return);
});
if (isset($out['upload']['ok'])) {
    $id = $out['upload']['ok'];
    $out['history'] = attempt(function () use ($client, $id) {
        $h = $client->history(['documentId' => $id]);
        $entries = is_array($h->return) ? $h->return : [$h->return];
        return array_map(fn($e) => $e->stateName, $entries);
    });
    $out['download_same'] = attempt(function () use ($client, $id, $pdf) {
        return $client->download(['documentId' => $id])->return->content === $pdf;
    });
}
echo json_encode($out);
