//! `Small<T>`: a list that holds zero or one item inline and moves to a
//! `Vec` only at the second. Most keys of a large store have one generation
//! holding one revision; with `Vec`s each such key cost two heap blocks
//! (about 80 bytes with the allocator's headers) on top of its index slot.

use std::ops::{Deref, DerefMut};

/// Zero or one item inline, more on the heap. Reads go through the slice.
#[derive(Clone, Debug, Default)]
pub enum Small<T> {
    /// No items.
    #[default]
    Empty,
    /// One item, inline.
    One(T),
    /// Two or more items (or what is left of them).
    Many(Vec<T>),
}

impl<T> Small<T> {
    /// A list of one item.
    pub fn one(item: T) -> Self {
        Small::One(item)
    }

    /// Appends `item`.
    pub fn push(&mut self, item: T) {
        *self = match std::mem::take(self) {
            Small::Empty => Small::One(item),
            Small::One(first) => Small::Many(vec![first, item]),
            Small::Many(mut items) => {
                items.push(item);
                Small::Many(items)
            }
        };
    }

    /// Removes the first `n` items (all of them if fewer); a single item
    /// left moves back inline.
    pub fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        *self = match std::mem::take(self) {
            Small::Empty | Small::One(_) => Small::Empty,
            Small::Many(mut items) => {
                items.drain(..n.min(items.len()));
                match items.len() {
                    0 => Small::Empty,
                    1 => Small::One(items.pop().expect("one item")),
                    _ => Small::Many(items),
                }
            }
        };
    }
}

impl<T> Deref for Small<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Small::Empty => &[],
            Small::One(item) => std::slice::from_ref(item),
            Small::Many(items) => items,
        }
    }
}

impl<T> DerefMut for Small<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Small::Empty => &mut [],
            Small::One(item) => std::slice::from_mut(item),
            Small::Many(items) => items,
        }
    }
}

impl<T: PartialEq> PartialEq for Small<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Small<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_shrinks_like_a_vec() {
        let mut s = Small::default();
        assert!(s.is_empty());
        s.push(1);
        assert!(matches!(s, Small::One(1)));
        s.push(2);
        s.push(3);
        assert_eq!(&*s, &[1, 2, 3]);
        s[0] = 10;
        assert_eq!(s.first(), Some(&10));
        s.drop_front(2);
        assert!(matches!(s, Small::One(3)), "one left moves inline: {s:?}");
        s.drop_front(0);
        assert_eq!(&*s, &[3]);
        s.drop_front(5);
        assert!(s.is_empty());
        assert_eq!(Small::one(7), {
            let mut v = Small::Empty;
            v.push(7);
            v
        });
        let mut many = Small::Many(vec![1, 2, 3]);
        many.drop_front(1);
        assert_eq!(&*many, &[2, 3]);
    }

    #[test]
    fn a_single_item_needs_no_heap_block() {
        // The inline case is what makes a one-revision key cheap: the list
        // is no bigger than the Vec it replaces plus a tag.
        assert!(std::mem::size_of::<Small<[u64; 2]>>() <= 32);
    }
}
