<?php
// A Sudoku grid, the same for everyone, from the classic shifting pattern; and which web
// node served it, so that a balanced service shows its nodes.
$grid = [];
for ($r = 0; $r < 9; $r++) {
    $row = [];
    for ($c = 0; $c < 9; $c++) {
        $row[] = (($r % 3) * 3 + intdiv($r, 3) + $c) % 9 + 1;
    }
    $grid[] = implode(' ', $row);
}
header('Content-Type: text/plain');
echo "Sudoku\n", implode("\n", $grid), "\n";
echo "served by ", $_SERVER['SERVER_ADDR'], ":", $_SERVER['SERVER_PORT'], "\n";
