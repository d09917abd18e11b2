<?php
/*
 * The mlsfeeds contract, as a PHP SoapClient sees it (ext-soap, WSDL mode, HTTP Basic).
 *
 *   php -d soap.wsdl_cache_enabled=0 client.php WSDL_URL ENDPOINT_URL LOGIN PASSWORD [FORBIDDEN_KEY]
 *
 * With MLSFEEDS_PHP_COMPRESSION=gzip in the environment, the client gzips its requests and
 * accepts compressed responses (SOAP_COMPRESSION_GZIP, as many PHP deployments configure it).
 *
 * Calls every operation as LOGIN, who must be entitled to source "a" and not to source "b":
 * walks SearchListings (StandardStatus Active, PageSize 50) until NextPageToken is absent, reads
 * one listing and its images, reads the feed status, and provokes every declared fault it can.
 * FORBIDDEN_KEY is a listing key that exists in source "b" (so Forbidden is not NotFound in
 * disguise). Prints one JSON object on stdout; tests/contract/test_php.py checks it against the
 * database. Exits 0 whenever the JSON was printed: the checks belong to the test, not here.
 */

declare(strict_types=1);

if ($argc < 5) {
    fwrite(STDERR, "usage: php client.php WSDL_URL ENDPOINT_URL LOGIN PASSWORD [FORBIDDEN_KEY]\n");
    exit(2);
}
[, $wsdl, $endpoint, $login, $password] = $argv;
$forbiddenKey = $argv[5] ?? 'any-key';

// Every notice or warning PHP raises while talking to the service is part of the result.
$warnings = [];
set_error_handler(function (int $level, string $message, string $file, int $line) use (&$warnings): bool {
    $warnings[] = $message;
    return true;
});

function client(string $wsdl, string $endpoint, string $login, string $password): SoapClient
{
    $options = getenv('MLSFEEDS_PHP_COMPRESSION') === 'gzip'
        ? ['compression' => SOAP_COMPRESSION_ACCEPT | SOAP_COMPRESSION_GZIP | 5]  // 5: the gzip level
        : [];
    return new SoapClient($wsdl, $options + [
        'login' => $login,
        'password' => $password,
        'location' => $endpoint,
        'features' => SOAP_SINGLE_ELEMENT_ARRAYS,
        'cache_wsdl' => WSDL_CACHE_NONE,
        'exceptions' => true,
        'trace' => true,
        'connection_timeout' => 10,
    ]);
}

/** A SoapFault, reduced to what a PHP caller can act on. */
function fault(SoapFault $f): array
{
    $detail = [];
    if (isset($f->detail) && is_object($f->detail)) {
        foreach (get_object_vars($f->detail) as $name => $value) {
            $detail[$name] = is_object($value) && isset($value->Message) ? $value->Message : $value;
        }
    }
    return [
        'faultcode' => $f->faultcode,
        'faultstring' => $f->faultstring,
        'detail' => $detail,
    ];
}

/** Runs $call and returns its fault, or a marker saying that none came. */
function expect_fault(callable $call): array
{
    try {
        $call();
        return ['faultcode' => null, 'faultstring' => 'no fault was raised', 'detail' => []];
    } catch (SoapFault $f) {
        return fault($f);
    }
}

function items($wrapper, string $name): array
{
    // SOAP_SINGLE_ELEMENT_ARRAYS: a repeated element is always an array, even with one item.
    return (is_object($wrapper) && isset($wrapper->$name)) ? $wrapper->$name : [];
}

$out = ['php' => PHP_VERSION, 'functions' => [], 'errors' => []];

try {
    $client = client($wsdl, $endpoint, $login, $password);
    $out['functions'] = $client->__getFunctions();

    // -- SearchListings: every page ------------------------------------------------------
    $keys = [];
    $pages = [];
    $totals = [];
    $token = null;
    for ($page = 0; $page < 1000; $page++) {
        $request = ['StandardStatus' => ['Active'], 'PageSize' => 50];
        if ($token !== null) {
            $request['PageToken'] = $token;
        }
        $response = $client->SearchListings($request);
        $rows = items($response->Listings ?? null, 'ListingSummary');
        $pages[] = count($rows);
        $totals[] = (int) $response->TotalCount;
        foreach ($rows as $row) {
            $keys[] = [$row->SourceId, $row->ListingKey, $row->StandardStatus ?? null, (int) $row->PhotosCount];
        }
        $token = $response->NextPageToken ?? null;
        if ($token === null || $token === '') {
            break;
        }
    }
    $out['search'] = ['pages' => $pages, 'totals' => $totals, 'listings' => $keys, 'ended' => $token === null];
    $out['request_headers'] = $client->__getLastRequestHeaders();

    // -- GetListing and GetListingImages on the first paged listing with photos ------------
    $withPhotos = null;
    foreach ($keys as $k) {
        if ($k[3] >= 1) {
            $withPhotos = $k;
            break;
        }
    }
    if ($withPhotos !== null) {
        $listing = $client->GetListing(['SourceId' => $withPhotos[0], 'ListingKey' => $withPhotos[1]])->Listing;
        $out['listing'] = [
            'SourceId' => $listing->SourceId,
            'ListingKey' => $listing->ListingKey,
            'ListingId' => $listing->ListingId ?? null,
            'StandardStatus' => $listing->StandardStatus ?? null,
            'ListPrice' => isset($listing->ListPrice) ? (string) $listing->ListPrice : null,
            'City' => $listing->City ?? null,
            'PostalCode' => $listing->PostalCode ?? null,
            'PhotosCount' => (int) $listing->PhotosCount,
            'ModificationTimestamp' => $listing->ModificationTimestamp ?? null,
            'FirstSeenTimestamp' => $listing->FirstSeenTimestamp ?? null,
        ];
        $images = $client->GetListingImages(['SourceId' => $withPhotos[0], 'ListingKey' => $withPhotos[1]]);
        $out['images'] = array_map(
            fn($i) => ['Order' => (int) $i->Order, 'Url' => $i->Url],
            items($images->Images ?? null, 'Image')
        );
    }

    // -- GetFeedStatus ------------------------------------------------------------------
    $feeds = $client->GetFeedStatus([]);
    $out['feeds'] = array_map(
        fn($f) => ['SourceId' => $f->SourceId, 'ListingCount' => (int) $f->ListingCount, 'Enabled' => (bool) $f->Enabled],
        items($feeds->Feeds ?? null, 'FeedStatus')
    );

    // -- every declared fault a consumer can provoke --------------------------------------
    $out['faults'] = [
        'Forbidden.GetListing' => expect_fault(fn() => $client->GetListing(['SourceId' => 'b', 'ListingKey' => $forbiddenKey])),
        'Forbidden.SearchListings' => expect_fault(fn() => $client->SearchListings(['SourceId' => ['b']])),
        'Forbidden.GetFeedStatus' => expect_fault(fn() => $client->GetFeedStatus(['SourceId' => 'b'])),
        'NotFound.GetListing' => expect_fault(fn() => $client->GetListing(['SourceId' => 'a', 'ListingKey' => 'no-such-key'])),
        'NotFound.GetListingImages' => expect_fault(fn() => $client->GetListingImages(['SourceId' => 'a', 'ListingKey' => 'no-such-key'])),
        'InvalidArgument.SearchListings' => expect_fault(fn() => $client->SearchListings(['MinPrice' => 500000, 'MaxPrice' => 100000])),
        'AuthenticationFailed.GetFeedStatus' => expect_fault(
            fn() => client($wsdl, $endpoint, $login, $password . '-wrong')->GetFeedStatus([])
        ),
    ];
} catch (Throwable $e) {
    $out['errors'][] = get_class($e) . ': ' . $e->getMessage()
        . ($e instanceof SoapFault ? ' [faultcode ' . $e->faultcode . ']' : '');
    if (isset($client)) {
        $out['last_request'] = $client->__getLastRequest();
        $out['last_response'] = $client->__getLastResponse();
    }
}

$out['warnings'] = $warnings;
echo json_encode($out, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
