-- The dump the MySQL service loads: a database with one post.
CREATE DATABASE IF NOT EXISTS wordpress;
USE wordpress;
CREATE TABLE wp_posts (
    ID BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    post_title TEXT NOT NULL
);
INSERT INTO wp_posts (post_title) VALUES ('Hello from the dump');
