<?php
// A peer implementation of mlsfeeds' SearchListings, as a team would write it with PHP's own
// SoapServer: the checked-in WSDL, PDO over the same database, an exact COUNT and a LIMIT'd
// page per call. bench/soap_search.py serves it with PHP's built-in server
// (PHP_CLI_SERVER_WORKERS) beside the service and the bare app. It answers the bench's request
// (status, type, price band, ListPrice order, PageSize); it is a baseline, not the product.
//
// Environment: MLSFEEDS_PEER_DSN (a PDO DSN), MLSFEEDS_PEER_USER / MLSFEEDS_PEER_PASSWORD (the
// HTTP Basic credentials it accepts), MLSFEEDS_PEER_WSDL (the WSDL file).

ini_set('soap.wsdl_cache_enabled', '1');
ini_set('soap.wsdl_cache', '1');  // WSDL_CACHE_DISK

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(405);
    exit;
}
if (($_SERVER['PHP_AUTH_USER'] ?? null) !== getenv('MLSFEEDS_PEER_USER')
    || !hash_equals(getenv('MLSFEEDS_PEER_PASSWORD'), $_SERVER['PHP_AUTH_PW'] ?? '')) {
    header('WWW-Authenticate: Basic realm="peer"');
    http_response_code(401);
    exit;
}

class Listings
{
    private const COLUMNS = 'source_id AS "SourceId", listing_key AS "ListingKey", listing_id AS "ListingId",
        standard_status AS "StandardStatus", property_type AS "PropertyType", list_price AS "ListPrice",
        bedrooms_total AS "BedroomsTotal", bathrooms_total_integer AS "BathroomsTotalInteger",
        living_area AS "LivingArea", unparsed_address AS "UnparsedAddress", city AS "City",
        state_or_province AS "StateOrProvince", postal_code AS "PostalCode", latitude AS "Latitude",
        longitude AS "Longitude", photos_count AS "PhotosCount", modification_timestamp AS "ModificationTimestamp"';

    private PDO $db;

    public function __construct()
    {
        $this->db = new PDO(getenv('MLSFEEDS_PEER_DSN'), null, null, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    }

    public function SearchListings($request)
    {
        [$where, $params] = $this->filters($request);
        $count = $this->db->prepare("SELECT count(*) FROM listings WHERE $where");
        $count->execute($params);
        $size = (int) ($request->PageSize ?? 25);
        $page = $this->db->prepare('SELECT ' . self::COLUMNS . " FROM listings WHERE $where AND list_price IS NOT NULL"
            . " ORDER BY list_price, id LIMIT $size");
        $page->execute($params);
        $rows = [];
        foreach ($page->fetchAll(PDO::FETCH_ASSOC) as $row) {
            $rows[] = array_filter($row, fn ($value) => $value !== null);
        }
        return ['TotalCount' => (int) $count->fetchColumn(), 'Listings' => ['ListingSummary' => $rows]];
    }

    private function filters($request): array
    {
        $where = ['removed_at IS NULL'];
        $params = [];
        foreach (['StandardStatus' => 'standard_status', 'PropertyType' => 'property_type'] as $field => $column) {
            $values = (array) ($request->$field ?? []);
            if ($values) {
                $where[] = "$column IN (" . implode(',', array_fill(0, count($values), '?')) . ')';
                array_push($params, ...$values);
            }
        }
        if (isset($request->MinPrice)) {
            $where[] = 'list_price >= ?';
            $params[] = $request->MinPrice;
        }
        if (isset($request->MaxPrice)) {
            $where[] = 'list_price <= ?';
            $params[] = $request->MaxPrice;
        }
        return [implode(' AND ', $where), $params];
    }
}

$server = new SoapServer(getenv('MLSFEEDS_PEER_WSDL'), ['features' => SOAP_SINGLE_ELEMENT_ARRAYS]);
$server->setObject(new Listings());
$server->handle();
