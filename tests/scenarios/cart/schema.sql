CREATE TABLE cart_items (
    cart TEXT NOT NULL,
    item TEXT NOT NULL,
    PRIMARY KEY (cart, item)
);
