<?php
// A page that takes 20 ms of a PHP worker, whatever the load: under many requests at
// once, a web node's workers are all busy and requests wait, which the autoscaler sees.
usleep(20000);
header('Content-Type: text/plain');
echo "worked on ", $_SERVER['SERVER_ADDR'], ":", $_SERVER['SERVER_PORT'], "\n";
