<?php
// A WordPress-style page: the first post of the database the MySQL service loaded from
// its dump. The service's address, user and password come as ConPaaS gave them.
header('Content-Type: text/plain');
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$db = new mysqli(
    getenv('MYSQL_IP'),
    getenv('MYSQL_USER'),
    getenv('MYSQL_PASSWORD'),
    'wordpress',
    (int) getenv('MYSQL_PORT')
);
$row = $db->query('SELECT post_title FROM wp_posts ORDER BY ID LIMIT 1')->fetch_row();
echo "first post: ", $row[0], "\n";
